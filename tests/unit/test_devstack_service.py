from __future__ import annotations

import sys
from pathlib import Path

import pytest

from devstack.service import Service, log_contains

pytestmark = pytest.mark.unit


def test_readiness_ignores_what_an_earlier_run_left_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    log.write_text("registered worker (an earlier run)\n")
    script = (
        "import time; print('starting', flush=True); time.sleep(0.5); "
        "print('registered worker', flush=True); time.sleep(30)"
    )
    service = Service(
        "svc",
        [sys.executable, "-c", script],
        env={},
        log_path=log,
        ready=log_contains("registered worker"),
    )
    try:
        service.start(timeout=20)
        assert "starting" in log.read_text()  # ready only after this run wrote its own line
        assert log.read_text().count("registered worker") == 2
    finally:
        service.stop(timeout=5)
    assert not service.running

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.foreground import run_until_stopped
from devstack.lifecycle import Lifecycle

pytestmark = [pytest.mark.unit, pytest.mark.timeout(20)]


class FakeService:
    def __init__(self) -> None:
        self.name = "fake"
        self.log_path = Path("fake.log")
        self.running = True


class FakeStack(Lifecycle):
    def __init__(self) -> None:
        self.events: list[str] = []

    def start(self) -> FakeStack:
        self.events.append("start")
        return self

    def stop(self) -> None:
        self.events.append("stop")


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_service_that_dies_stops_everything(capsys: pytest.CaptureFixture[str]) -> None:
    stack, service = FakeStack(), FakeService()
    threading.Timer(0.3, lambda: setattr(service, "running", False)).start()
    run_until_stopped(stack, lambda: [service], "the banner")  # type: ignore[list-item]
    assert stack.events == ["start", "stop"]
    assert "the banner" in capsys.readouterr().out


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda sig: sig.name
)
def test_a_stop_signal_stops_everything(sig: signal.Signals) -> None:
    stack, service = FakeStack(), FakeService()
    threading.Timer(0.3, lambda: os.kill(os.getpid(), sig)).start()
    run_until_stopped(stack, lambda: [service], "")  # type: ignore[list-item]
    assert stack.events == ["start", "stop"]
    assert service.running

"""The capacity benchmark's bookkeeping: the knee rule and the py-spy summary (no timings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.capacity import knee
from bench.pyspy import summarize

pytestmark = pytest.mark.unit

WORKER = 'process 10:"python -m agent start"'
FORKSERVER = 'process 11:"python -B -c from multiprocessing.forkserver import main; main(1, 2)"'
JOB = 'process 12:"python -B -c from multiprocessing.forkserver import main; main(1, 2)"'
SITE = "/venv/lib/python3.11/site-packages"


def _step(n: int, p95: float | None, failed: int = 0) -> dict[str, Any]:
    return {"sessions": n, "latency_ms": {"p95": p95}, "failed_turns": failed}


def test_capacity_knee_is_the_largest_n_without_failures_within_the_limit() -> None:
    steps = [_step(1, 1000), _step(2, 1400), _step(3, 1600), _step(4, 1200, failed=1)]
    assert knee(steps) == 2  # N=3 is over 1.5x N=1's p95; N=4 failed a turn
    assert knee([_step(1, None, failed=4)]) is None


def test_pyspy_summary_splits_processes_drops_idle_and_finds_ours(tmp_path: Path) -> None:
    job = f"{WORKER};{FORKSERVER};{JOB}"
    lines = [
        # a job process running silero under the framework's VAD stream: the framework's
        f"{job};_main_task ({SITE}/livekit/plugins/silero/vad.py:300);"
        f"run ({SITE}/onnxruntime/capi/onnxruntime_inference_collection.py:200) 6",
        # our state notifier calling into the rtc SDK: the SDK's, but counted in ours_inclusive
        f"{job};_deliver (/repo/agent/state_notifier.py:168);"
        f"request ({SITE}/livekit/rtc/_ffi_client.py:100) 2",
        # our own frame as the leaf
        f"{job};_on_state (/repo/agent/state_notifier.py:230) 1",
        # the worker process itself, busy in the framework's IPC
        f"{WORKER};_run ({SITE}/livekit/agents/ipc/proc_pool.py:50) 1",
        # an idle thread py-spy did not recognise: dropped
        f"{job};EpollSelector.select (/usr/lib/python3.11/selectors.py:468) 90",
    ]
    raw = tmp_path / "profile.txt"
    raw.write_text("\n".join(lines) + "\n")
    out = summarize(raw)
    assert out["samples"] == 10
    assert out["idle_dropped"] == 90
    assert out["by_process_pct"] == {"job processes": 90.0, "worker": 10.0}
    assert out["ours_inclusive_pct"] == 30.0
    assert out["buckets_pct"]["onnxruntime"] == 60.0
    assert out["buckets_pct"]["rtc SDK (livekit)"] == 20.0
    assert out["buckets_pct"]["ours: agent/"] == 10.0

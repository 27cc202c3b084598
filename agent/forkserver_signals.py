"""Preloaded in the worker's forkserver: it and every job process ignore SIGTERM and SIGINT.

`build_server` lists this module in `AgentServer(preload_modules=...)`, so the multiprocessing
forkserver imports it once at start; job processes are forked from the forkserver and inherit
the ignored signals. Imported anywhere else (the worker itself), it does nothing.

Why: a stop signal often reaches the whole process group (systemd's default `KillMode`,
`kill -TERM -<pgid>`, Ctrl+C in a terminal, `make dev`), not just the worker. The worker handles
it by draining (no new jobs, exit once the running sessions end). livekit-agents means its job
processes to ignore the signal (`job_proc_lazy_main`), but under the forkserver that module is
first imported in the forkserver, where its "am I a job process" check is false, so:

- job processes kept the default action and died at once: every session was cut instead of
  drained;
- the forkserver died, after which the worker could no longer learn how its job processes ended:
  it reported each as "exit code 255" and lost their logs for the rest of the drain.

Upstream: livekit/agents#7336 (job process signal handlers never installed under forkserver).
Still present in the installed livekit-agents (1.8.9); tests/unit/test_agent_lifecycle.py
`test_upstream_forkserver_signal_bug_is_still_there` fails once an upgrade fixes it: then delete
this module and its `preload_modules` entry in `agent/worker.py`.
"""

from __future__ import annotations

import inspect
import signal
from multiprocessing import forkserver

__all__ = ["STOP_SIGNALS", "imported_by_the_forkserver"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def imported_by_the_forkserver() -> bool:
    """Whether this import runs inside `multiprocessing.forkserver.main` (its preload step)."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


if imported_by_the_forkserver():
    for _sig in STOP_SIGNALS:
        signal.signal(_sig, signal.SIG_IGN)

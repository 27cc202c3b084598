"""The agent worker and an unreachable livekit-server, end to end.

- A worker started before its server keeps retrying with growing intervals and stays alive and
  healthy, then registers once the server is up, and a new session gets its agent. (That it keeps
  retrying past the framework's own limit of 16 attempts, about two minutes, is the unit test
  `test_worker_retries_reaching_livekit_forever_unless_a_limit_is_set`: waiting it out here
  would add minutes to every run.)
- With `AGENT_CONNECT_MAX_RETRIES` set, the worker gives up after that many attempts and exits
  with a failure status (the framework alone would exit 0), for a supervisor to see.

A server restarted under a running worker is `test_faults_lifecycle.py`'s restart test.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fault_helpers import (
    FAULT_ENV,
    JOIN_TIMEOUT,
    AgentLog,
    forget_old_logs,
    new_session_works,
    wait_for,
    worker_status,
)

from devstack.stack import ServiceName, Stack, StackConfig

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

# Retries to watch before the server starts: waits of 0, 2, 4, 6 and 8 s (the framework's backoff).
RETRIES_BEFORE_SERVER = 5
RETRIES_TIMEOUT = 120.0
RETRY_MESSAGE = "failed to connect to livekit"


@contextmanager
def stack_before_its_server(services: tuple[ServiceName, ...], **env: str) -> Iterator[Stack]:
    """The services on free ports, livekit-server not started; the agent launched, not awaited
    (it is ready only once registered)."""
    stack = forget_old_logs(
        Stack(StackConfig(env={**FAULT_ENV, **env}, services=services, run_livekit=False))
    )
    try:
        for name, spec in stack.specs.items():
            if name != "agent":
                stack.services[name].start(timeout=spec.start_timeout)
        stack.services["agent"].launch()
        yield stack
    finally:
        stack.stop()


def retry_delays(records: list[dict[str, Any]]) -> list[int]:
    delays = []
    for record in records:
        found = re.search(r"retrying in (\d+)s", str(record["message"]))
        assert found, record
        delays.append(int(found.group(1)))
    return delays


async def test_worker_started_before_livekit_retries_with_backoff_then_serves() -> None:
    with stack_before_its_server(("standin", "token_server", "agent")) as stack:
        worker = stack.services["agent"]
        log = AgentLog(worker.log_path)

        def enough_retries_or_exited() -> bool:
            seen = log.find(RETRY_MESSAGE, retry_count=RETRIES_BEFORE_SERVER)
            return bool(seen) or not worker.running

        await wait_for(enough_retries_or_exited, "retries with backoff", timeout=RETRIES_TIMEOUT)
        assert worker.running, "the worker gave up"
        assert (await worker_status(stack)).healthy

        retries = log.find(RETRY_MESSAGE)
        assert [r["retry_count"] for r in retries] == list(range(1, len(retries) + 1))
        delays = retry_delays(retries)
        assert delays == sorted(delays)  # the intervals grow ...
        assert delays[0] < delays[-1]

        await asyncio.to_thread(stack.livekit.start)
        await log.wait("registered worker", timeout=JOIN_TIMEOUT)
        await new_session_works(stack)

        text = worker.log_path.read_text(errors="replace")
        assert stack.api_secret not in text
        assert "Bearer" not in text


async def test_worker_with_a_retry_limit_exits_with_failure_when_livekit_never_answers() -> None:
    limit = 2
    with stack_before_its_server(("agent",), AGENT_CONNECT_MAX_RETRIES=str(limit)) as stack:
        worker = stack.services["agent"]
        proc = worker.proc
        assert proc is not None
        returncode = await wait_for(proc.poll, "the worker exiting", timeout=JOIN_TIMEOUT * 2)
        assert returncode == 1
        log = AgentLog(worker.log_path)
        assert len(log.find(RETRY_MESSAGE)) == limit
        assert "gave up reaching livekit-server" in worker.log_path.read_text(errors="replace")

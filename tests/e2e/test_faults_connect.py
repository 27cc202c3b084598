"""The agent worker and an unreachable livekit-server, end to end.

- A worker started before its server keeps retrying with growing, capped intervals (past the
  framework's own limit of 16 attempts, after which livekit-agents would stop the worker), then
  registers once the server is up, and a new session gets its agent.
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

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

# livekit-agents 1.8's `AgentServer(max_retry=16)` default: the attempt count at which it gives up.
FRAMEWORK_MAX_RETRY = 16
# 0 + 2 + 4 + 6 + 8 + 10 * 11 s of waits until then: a hang guard well above it.
PAST_FRAMEWORK_LIMIT_TIMEOUT = 400.0
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

        def past_the_framework_limit_or_exited() -> bool:
            past = log.find(RETRY_MESSAGE, retry_count=FRAMEWORK_MAX_RETRY + 1)
            return bool(past) or not worker.running

        await wait_for(
            past_the_framework_limit_or_exited,
            "a retry past the framework's limit",
            timeout=PAST_FRAMEWORK_LIMIT_TIMEOUT,
        )
        assert worker.running, "the worker gave up"
        assert (await worker_status(stack)).healthy

        retries = log.find(RETRY_MESSAGE)
        assert [r["retry_count"] for r in retries] == list(range(1, len(retries) + 1))
        delays = retry_delays(retries)
        assert delays == sorted(delays)  # the intervals grow ...
        assert delays[0] < delays[-1]
        assert len(set(delays[-5:])) == 1  # ... up to a cap

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

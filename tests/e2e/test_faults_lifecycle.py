"""Connections and processes failing under a live session, end to end on the real server.

One stack for the module; the tests run in this order because the last one stops the worker:

1. the user's process dies (no leave message) and the same identity rejoins within the grace;
2. the job process serving a session is SIGKILLed;
3. livekit-server restarts (same ports and keys) under a live session;
4. the worker gets SIGTERM with a session running.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import psutil
import pytest
from fault_helpers import (
    ANSWER,
    FAQS,
    JOIN_TIMEOUT,
    QUESTION,
    TURN_TIMEOUT,
    AgentLog,
    ask,
    droppable_user,
    fault_stack,
    listening_now,
    new_session_works,
    process_group,
    wait_for,
    wait_for_greeting,
    wait_for_jobs,
    wait_for_leave,
    wait_for_text,
    worker_status,
)

from devstack.stack import Stack
from simuser import SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REJOIN_GRACE_SECONDS = 30
# livekit-server notices a dead client when its peer connection times out (~25 s here).
SERVER_NOTICES_DEATH_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with fault_stack(
        AGENT_USER_REJOIN_GRACE_SECONDS=str(REJOIN_GRACE_SECONDS),
        # Long enough never to end a session while a test waits on the server.
        AGENT_IDLE_TIMEOUT_SECONDS="300",
    ) as s:
        yield s


def agent_log(stack: Stack) -> AgentLog:
    return AgentLog(stack.services["agent"].log_path).mark()


async def test_dropped_user_rejoining_within_the_grace_keeps_the_session(stack: Stack) -> None:
    log = agent_log(stack)
    async with droppable_user(stack, faqs=FAQS) as first:
        await first.drop()
    await log.wait(
        f"user {first.identity} dropped", room=first.room, timeout=SERVER_NOTICES_DEATH_TIMEOUT
    )

    again = SimulatedUser(first.url, first.token)
    async with again:
        # the agent re-sends its current state to the rejoined page, with a newer seq
        state = await again.wait_for_state("listening", timeout=TURN_TIMEOUT)
        assert state.event.seq > first.last_seq
        assert again.agent_identity == first.agent
        await log.wait(f"user {first.identity} rejoined", room=first.room)

        answer = await ask(again, QUESTION, expect=ANSWER)
        assert answer.final
        agents = [i for i in again.room.remote_participants if i.startswith("agent")]
        assert agents == [first.agent]  # the same job carried on; no second agent came

    job_pids = {r["pid"] for r in log.records() if r.get("room") == first.room and "user" in r}
    assert len(job_pids) == 1
    assert log.find("did not rejoin") == []


async def test_killed_job_process_leaves_the_room_and_the_worker_carries_on(
    stack: Stack,
) -> None:
    log = agent_log(stack)
    worker = stack.services["agent"]
    assert worker.pid is not None
    user = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
    async with user:
        await wait_for_greeting(user)
        agent = user.agent_identity
        assert agent is not None
        job_pid = log.job_pid(user.room.name)
        children = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
        assert job_pid in children

        os.kill(job_pid, signal.SIGKILL)

        # what the page sees: the agent participant leaves (once the server notices)
        await wait_for_leave(user, agent, timeout=SERVER_NOTICES_DEATH_TIMEOUT)
        assert user.room.isconnected()
        status = await wait_for_jobs(stack, 0)
        assert status.healthy
        assert worker.running

    assert log.find("registered worker") == []  # the worker never lost its registration
    await new_session_works(stack)


async def test_livekit_server_restart_mid_session(stack: Stack) -> None:
    """What really happens: the worker re-registers by itself; the old session's user and its
    agent both reconnect to the restarted server, so the page sees the agent leave and come
    back (same identity, same job), gets the current state again, and the session goes on."""
    log = agent_log(stack)
    old = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
    async with old:
        await wait_for_greeting(old)
        agent = old.agent_identity
        assert agent is not None
        seq = await listening_now(old)

        await asyncio.to_thread(stack.livekit.restart)

        await log.wait("registered worker", timeout=JOIN_TIMEOUT)
        assert (await worker_status(stack)).healthy

        await wait_for_leave(old, agent)
        await wait_for(
            lambda: old.room.isconnected() and old.agent_identity == agent,
            "the old session's agent back in its room",
            timeout=JOIN_TIMEOUT,
        )
        resent = await old.wait_for_state("listening", after_seq=seq, timeout=TURN_TIMEOUT)
        assert resent.event.seq > seq
        answer = await ask(old, QUESTION, expect=ANSWER)
        assert answer.final

    await new_session_works(stack)


async def test_sigterm_drains_the_running_session_and_takes_no_new_one(stack: Stack) -> None:
    """SIGTERM to the worker's whole process group (as systemd, `kill -TERM -pgid` or Ctrl+C
    send it): the running session goes on until its user leaves, a room created meanwhile gets
    no agent, and the worker then exits cleanly with nothing of it left running."""
    log = agent_log(stack)
    worker = stack.services["agent"]
    assert worker.proc is not None
    proc, pgid = worker.proc, worker.proc.pid
    user = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
    assert user.grant is not None
    room = user.grant.room
    async with user:
        await wait_for_greeting(user)
        late = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
        assert late.grant is not None

        worker.send_signal(signal.SIGTERM)
        await log.wait("draining worker")

        async with late:
            await wait_for_text(
                stack.livekit.log_path,
                "not dispatching agent job since no worker is available",
                late.grant.room,
            )
            # the running session is not cut: a turn right after the SIGTERM is answered
            answer = await ask(user, QUESTION, expect=ANSWER)
            assert answer.final
            assert late.agent_identity is None
            assert worker.running

    returncode = await asyncio.to_thread(proc.wait, JOIN_TIMEOUT)
    assert returncode == 0
    await wait_for(lambda: process_group(pgid) == [], "the worker's processes gone")
    # the job ended the normal way, and the worker saw it (no lost logs, no bogus exit code)
    assert log.find("session closed", room=room)
    assert log.find("process exited with non-zero exit code") == []

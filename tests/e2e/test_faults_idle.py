"""The user never speaks (a tab left open): the idle timeout ends the session politely.

Own stack with AGENT_IDLE_TIMEOUT_SECONDS=8 (the framework's `user_away_timeout`): after the
greeting nobody says or types anything, so the agent says its goodbye line, and only then leaves
the room and ends its job.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fault_helpers import (
    FAQS,
    JOIN_TIMEOUT,
    AgentLog,
    fault_stack,
    spoken_lines,
    wait_for_greeting,
    wait_for_jobs,
    wait_for_leave,
)

from devstack.stack import Stack
from simuser import SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

IDLE_TIMEOUT_SECONDS = 8


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with fault_stack(AGENT_IDLE_TIMEOUT_SECONDS=str(IDLE_TIMEOUT_SECONDS)) as s:
        yield s


async def test_silent_user_gets_the_goodbye_line_then_the_agent_leaves(stack: Stack) -> None:
    log = AgentLog(stack.services["agent"].log_path).mark()
    goodbye = spoken_lines("en").idle_goodbye
    user = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
    assert user.grant is not None
    room = user.grant.room
    async with user:
        greeted = await wait_for_greeting(user)
        agent = user.agent_identity
        assert agent is not None

        said = await user.wait_for_transcript(
            speaker="agent", after=greeted.received, timeout=IDLE_TIMEOUT_SECONDS + JOIN_TIMEOUT
        )
        assert said.text == goodbye
        assert said.final
        # the goodbye is spoken (speaking, then listening) before the agent goes
        speaking = await user.wait_for_state("speaking", after_seq=greeted.event.seq)
        await user.wait_for_state("listening", after_seq=speaking.event.seq)

        left = await wait_for_leave(user, agent, timeout=JOIN_TIMEOUT)
        assert said.ended is not None
        assert left.at.mono >= said.ended.mono
        assert user.room.isconnected()  # the room stays; only the agent is gone

    await log.wait("user idle for the timeout", room=room)
    await log.wait("session closed", room=room)
    assert (await wait_for_jobs(stack, 0)).healthy

"""Provider faults, end to end: the stand-in's LLM, STT or TTS fails or hangs mid-session.

One stack and one conversation for the module, in this order: LLM 500s, LLM hang, TTS 500s, an
STT outage over several utterances, and finally the user leaving. Each fault lasts until the
test clears it; each test then checks the very next turn is answered normally. The agent's
provider timeout is short here (AGENT_PROVIDER_TIMEOUT_SECONDS=3) so a hang costs ~10 s.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

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
    clear_faults,
    fault_stack,
    listening_now,
    set_fault,
    spoken_lines,
    wait_for,
    wait_for_greeting,
    wait_for_jobs,
    worker_status,
)

from devstack.stack import Stack
from simuser import SimulatedUser, Stamp
from simuser.recording import StateChange

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

FALLBACK = spoken_lines("en").fallback
# Per provider attempt; with 2 retries a hung LLM is given up after ~3 x 3 s + 2 x 0.5 s.
PROVIDER_TIMEOUT_SECONDS = 3
# The framework's own limit was 3 consecutive unrecoverable errors; one more proves ours.
STT_OUTAGE_UTTERANCES = 4


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with fault_stack(AGENT_PROVIDER_TIMEOUT_SECONDS=str(PROVIDER_TIMEOUT_SECONDS)) as s:
        yield s


@pytest.fixture(scope="module")
def worker_children(stack: Stack) -> int:
    """The worker's child processes before any session (forkserver, idle job process, ...)."""
    pid = stack.services["agent"].pid
    assert pid is not None
    return len(psutil.Process(pid).children(recursive=True))


@pytest.fixture(scope="module")
async def user(stack: Stack, worker_children: int) -> AsyncIterator[SimulatedUser]:
    u = await SimulatedUser.from_token_server(stack.token_url, faqs=FAQS)
    async with u:
        await wait_for_greeting(u)
        yield u


@pytest.fixture(autouse=True)
async def no_fault_outlives_its_test(stack: Stack) -> AsyncIterator[None]:
    yield
    await clear_faults(stack)


def agent_log(stack: Stack) -> AgentLog:
    return AgentLog(stack.services["agent"].log_path).mark()


def states_since(user: SimulatedUser, seq: int) -> list[str]:
    return [c.event.state for c in user.recording.states if c.event.seq > seq]


async def back_to_listening(user: SimulatedUser, after_seq: int) -> StateChange:
    """The agent went through a turn (a state after `after_seq`) and listens again."""
    await wait_for(
        lambda: states_since(user, after_seq) or None, "a state change", timeout=TURN_TIMEOUT
    )
    return await user.wait_for_state("listening", after_seq=after_seq + 1, timeout=TURN_TIMEOUT)


def injected(state: dict[str, Any], target: str) -> int:
    """How many requests to `target` the stand-in has failed so far (cumulative)."""
    return int(state["injected"].get(target, 0))


async def assert_fallback_then_recovery(
    stack: Stack, user: SimulatedUser, log: AgentLog, kind: str, *, injected_before: int
) -> None:
    seq = await listening_now(user)
    before = Stamp.now()
    await user.send_text(QUESTION)
    said = await user.wait_for_transcript(speaker="agent", after=before, timeout=TURN_TIMEOUT)
    assert said.text == FALLBACK
    await back_to_listening(user, seq)
    assert states_since(user, seq)[:1] == ["thinking"]
    assert "speaking" in states_since(user, seq)
    assert log.find(f"unrecoverable {kind}", room=user.room.name)

    # the call and its 2 retries failed, then the fallback line was said
    assert injected(await clear_faults(stack), "chat") - injected_before == 3

    answer = await ask(user, QUESTION, expect=ANSWER)
    assert answer.final


async def test_llm_errors_speak_the_fallback_line_then_recover(
    stack: Stack, user: SimulatedUser
) -> None:
    log = agent_log(stack)
    state = await set_fault(stack, "chat", "error")
    await assert_fallback_then_recovery(
        stack, user, log, "llm_error", injected_before=injected(state, "chat")
    )


async def test_hung_llm_times_out_into_the_fallback_line_then_recovers(
    stack: Stack, user: SimulatedUser
) -> None:
    log = agent_log(stack)
    # Hangs far longer than the agent waits (3 attempts of PROVIDER_TIMEOUT_SECONDS).
    state = await set_fault(stack, "chat", "hang", delay_s=PROVIDER_TIMEOUT_SECONDS * 10)
    await assert_fallback_then_recovery(
        stack, user, log, "llm_error", injected_before=injected(state, "chat")
    )


async def test_tts_errors_leave_the_agent_listening_and_are_logged_then_recover(
    stack: Stack, user: SimulatedUser
) -> None:
    """TTS down: nothing can be said, not even the fallback line. The turn ends (thinking, then
    listening), the error is logged, and the next turn after the outage is spoken again."""
    log = agent_log(stack)
    state = await set_fault(stack, "tts", "error")
    seq = await listening_now(user)
    before = Stamp.now()
    await user.send_text(QUESTION)
    await back_to_listening(user, seq)
    assert states_since(user, seq) == ["thinking", "listening"]
    await log.wait("unrecoverable tts_error", room=user.room.name)
    assert user.transcripts(speaker="agent", after=before) == []
    assert injected(await clear_faults(stack), "tts") > injected(state, "tts")

    answer = await ask(user, QUESTION, expect=ANSWER)
    assert answer.final


async def test_stt_outage_over_several_utterances_keeps_the_session(
    stack: Stack, user: SimulatedUser
) -> None:
    """Every utterance fails to transcribe: the agent says the fallback line each time and keeps
    the session (the framework's default would have closed it at the 4th); once the STT is
    back, a spoken question is transcribed and answered."""
    log = agent_log(stack)
    agent = user.agent_identity
    await user.publish_microphone()
    state = await set_fault(stack, "stt", "error")
    for n in range(1, STT_OUTAGE_UTTERANCES + 1):
        seq = await listening_now(user)
        spoken = await user.say(QUESTION, lead_silence=0.5, trail_silence=1.0)
        said = await user.wait_for_transcript(
            speaker="agent", after=spoken.started, contains=FALLBACK[:20], timeout=TURN_TIMEOUT
        )
        assert said.text == FALLBACK
        await back_to_listening(user, seq)
        assert len(log.find("unrecoverable stt_error", room=user.room.name)) >= n
    assert user.agent_identity == agent
    assert log.find("closing due to unrecoverable error") == []
    failed = injected(await clear_faults(stack), "stt") - injected(state, "stt")
    assert failed >= STT_OUTAGE_UTTERANCES

    spoken = await user.say(QUESTION, lead_silence=0.5, trail_silence=1.0)
    heard = await user.wait_for_transcript(speaker="user", final=True, after=spoken.started)
    assert "opening hours" in heard.text.lower()
    answer = await user.wait_for_transcript(
        speaker="agent", after=spoken.started, contains=ANSWER, timeout=TURN_TIMEOUT
    )
    assert answer.final


async def test_no_job_process_is_left_after_the_faults(
    stack: Stack, user: SimulatedUser, worker_children: int
) -> None:
    """The user leaves: its job ends and the worker is back to its idle process count."""
    status = await worker_status(stack)
    assert (status.healthy, status.active_jobs) == (True, 1)
    await user.aclose()
    worker = psutil.Process(stack.services["agent"].pid)
    await wait_for(
        lambda: len(worker.children(recursive=True)) == worker_children,
        "the worker's children back to their idle count",
        timeout=JOIN_TIMEOUT,
    )
    status = await wait_for_jobs(stack, 0)
    assert status.healthy

"""End to end: a user who starts talking while the agent greets is heard and answered.

A real visitor does not wait for the avatar to finish its hello. The user here asks an FAQ by
voice half a second after the greeting's `speaking` state reached them; the agent must stop the
greeting, transcribe the question once and answer it. (The framework's AEC warm-up, on by
default, would feed the recogniser silence for the first 3 s of the greeting and lose the
question: `AGENT_AEC_WARMUP_SECONDS`, docs/greeting.md.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conversation_helpers import (
    AGENT_TIMEOUT,
    HOURS,
    PASSWORD,
    TURN_TIMEOUT,
    agent_path,
    assert_one_final_per_segment,
    assert_session_states_sane,
    collapse,
    normalize,
    similarity,
)

from agent.prompts import language_prompts
from common.languages import get_language
from devstack.stack import Stack
from simuser import EchoPath, SimulatedUser, Stamp, StateChange, TranscriptStream, Utterance
from simuser.cli import build_parser
from simuser.cli import run as run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# How far into the greeting (after its `speaking` state arrived) the user starts talking.
SPEAK_INTO_GREETING = 0.5
GREETING = language_prompts(get_language("en").prompt).greeting


@dataclass
class EarlyQuestion:
    user: SimulatedUser
    greeting_speaking: StateChange
    question: Utterance
    answer: TranscriptStream
    done: StateChange


@pytest.fixture(scope="module")
async def early_question(stack: Stack) -> AsyncIterator[EarlyQuestion]:
    """The user asks HOURS into the greeting; recorded until the agent listens again."""
    user = await SimulatedUser.from_token_server(stack.token_url, faqs=[HOURS, PASSWORD])
    await user.connect()
    try:
        await user.wait_for_agent(AGENT_TIMEOUT)
        await user.publish_microphone()
        greeting = await user.wait_for_state("speaking", timeout=TURN_TIMEOUT)
        # Sleep until SPEAK_INTO_GREETING after the state arrived (not a pass/fail timing).
        start = greeting.received.shifted(SPEAK_INTO_GREETING)
        await asyncio.sleep(max(0.0, start.since(Stamp.now())))
        question = await user.say(HOURS.question, trail_silence=1.0)
        answer = await user.wait_for_transcript(
            speaker="agent", final=True, contains="nine to five", timeout=TURN_TIMEOUT
        )
        speaking = await user.wait_for_state(
            "speaking", after_seq=greeting.event.seq + 1, timeout=TURN_TIMEOUT
        )
        done = await user.wait_for_state(
            "listening", after_seq=speaking.event.seq, timeout=TURN_TIMEOUT
        )
        yield EarlyQuestion(user, greeting, question, answer, done)
    finally:
        await user.aclose()


async def test_question_spoken_during_the_greeting_is_answered(
    early_question: EarlyQuestion,
) -> None:
    turn = early_question
    # The user really spoke while the greeting was on: after its `speaking`, before `listening`.
    greeting_over = next(
        s
        for s in turn.user.recording.states
        if s.event.seq > turn.greeting_speaking.event.seq and s.event.state != "speaking"
    )
    assert turn.question.speech_started.mono < greeting_over.received.mono
    assert turn.answer.text == HOURS.answer
    assert turn.answer.final


async def test_question_during_the_greeting_has_exactly_one_user_final(
    early_question: EarlyQuestion,
) -> None:
    user = early_question.user
    streams = user.transcripts(speaker="user")
    finals = assert_one_final_per_segment(streams)
    assert len(finals) == 1, f"user finals: {finals}"
    (text,) = finals.values()
    assert similarity(text, HOURS.question) >= 80, text


async def test_greeting_is_cut_by_the_question_then_states_run_in_order(
    early_question: EarlyQuestion,
) -> None:
    user = early_question.user
    states = [s for s in user.recording.states if s.event.seq <= early_question.done.event.seq]
    seen = collapse(agent_path(states))
    assert seen == ["listening", "speaking", "listening", "thinking", "speaking", "listening"], seen
    # The greeting stopped because of the user: its listening came after they began speaking.
    stopped = states[[s.event.state for s in states].index("speaking") + 1]
    assert stopped.received.mono > early_question.question.speech_started.mono
    # Its transcript ended early, on a word boundary of the greeting.
    greeting = next(
        s for s in user.transcripts(speaker="agent", final=True) if s is not early_question.answer
    )
    cut = normalize(greeting.text)
    assert cut
    assert normalize(GREETING).startswith(cut)
    assert len(cut) < len(normalize(GREETING)), greeting.text
    assert_session_states_sane(user)


@pytest.mark.parametrize("greeting_wait", [None, "0"], ids=["default", "into-greeting"])
async def test_simuser_cli_demo_from_the_readme_is_answered(
    stack: Stack, tmp_path: Path, greeting_wait: str | None
) -> None:
    """The README's shell demo, as written (default: the user lets the greeting finish), and
    with `--greeting-wait 0` (the user talks into the greeting): both get the answer."""
    report = tmp_path / "report.json"
    argv = ["--token-url", stack.token_url, "--language", "en"]
    argv += ["--faq", f"{HOURS.question}|{HOURS.answer}", "--say", HOURS.question]
    argv += ["--save-audio", str(tmp_path / "agent.wav"), "--json-report", str(report)]
    if greeting_wait is not None:
        argv += ["--greeting-wait", greeting_wait]
    assert await run_cli(build_parser().parse_args(argv)) == 0
    data = json.loads(report.read_text())
    assert data["problems"] == []
    assert [t["agent_text"] for t in data["turns"]] == [HOURS.answer]
    states = data["recording"]["states"]
    greeting_done = next(
        s for s in states if s["previous"] == "speaking" and s["state"] != "speaking"
    )
    (question,) = data["recording"]["utterances"]
    spoke_after_greeting = question["speech_started"]["mono"] > greeting_done["received"]["mono"]
    # Default: after the greeting; into the greeting: the greeting ended because of the user.
    assert spoke_after_greeting is (greeting_wait is None)


async def _greeting_with_echo(stack: Stack, echo: EchoPath) -> SimulatedUser:
    """A silent user whose microphone carries the agent's voice back (from the first frame)."""
    user = await SimulatedUser.from_token_server(stack.token_url, faqs=[HOURS], echo=echo)
    await user.connect()
    await user.publish_microphone()
    await user.wait_for_agent(AGENT_TIMEOUT)
    return user


async def test_agent_is_not_interrupted_by_its_own_echo_through_echo_cancellation(
    stack: Stack,
) -> None:
    """The trade-off of listening from the first word (docs/greeting.md): a page with echo
    cancellation on (livekit-client's default) sends back no echo loud enough to interrupt."""
    user = await _greeting_with_echo(stack, EchoPath(level_db=-6, cancel=True))
    try:
        speaking = await user.wait_for_state("speaking", timeout=TURN_TIMEOUT)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=TURN_TIMEOUT)
        greeting = await user.wait_for_transcript(speaker="agent", timeout=TURN_TIMEOUT)
        # Two more seconds of echo-free quiet: no user turn may follow the greeting.
        await asyncio.sleep(2.0)
        assert normalize(greeting.text) == normalize(GREETING), greeting.text
        assert user.transcripts(speaker="user") == []
        assert collapse([s.event.state for s in user.recording.states]) == [
            "listening",
            "speaking",
            "listening",
        ]
    finally:
        await user.aclose()


async def test_without_echo_cancellation_the_echo_does_interrupt_the_agent(
    stack: Stack,
) -> None:
    """The control for the test above: the same echo, not cancelled, does reach the agent and
    cut its greeting (so the echo path is real and the test above is not vacuous)."""
    user = await _greeting_with_echo(stack, EchoPath(level_db=-6, cancel=False))
    try:
        heard = await user.wait_for_transcript(speaker="user", timeout=TURN_TIMEOUT)
        greeting = await user.wait_for_transcript(speaker="agent", timeout=TURN_TIMEOUT)
        assert heard.text
        assert len(normalize(greeting.text)) < len(normalize(GREETING)), greeting.text
    finally:
        await user.aclose()

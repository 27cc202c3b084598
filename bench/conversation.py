"""A scripted voice conversation of one simulated user, as the capacity benchmark runs it.

Join, hear the greeting, then ask `turns` FAQ questions by voice with pauses between them, and
leave. Questions are rendered once per run (`Phrasebook`) and every user plays the same samples:
the simulated users should cost as little CPU as they can, since they share the machine with the
worker being measured.

A turn is answered only when the WHOLE answer arrived within `turn_timeout` seconds of the end of
the user's speech: the agent's audio, its final answer transcript, and the agent back to
listening; and the answer must be the FAQ's. Anything else is a failed turn with one cause:

- `join`: the user could not connect, or no agent joined (every turn of the session);
- `no greeting`: the agent joined but its greeting did not end in time (every turn);
- `no answer`: no agent audio before the deadline;
- `incomplete answer`: audio came, but the final transcript or the return to listening did not;
- `wrong answer`: complete in time, but not the FAQ's answer (misheard or mismatched);
- `error`: the room failed under the user (disconnected, an exception), this turn and the rest.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from common.metadata import Faq
from simuser import SimulatedUser, Stamp
from simuser.audio import Int16Array, load_wav
from simuser.speech import render_speech

from .common import AgentAttributeStates

__all__ = [
    "CAUSES",
    "ConversationPlan",
    "Phrasebook",
    "SessionResult",
    "TurnResult",
    "run_conversation",
]

logger = logging.getLogger(__name__)

CAUSES = ("join", "no greeting", "no answer", "incomplete answer", "wrong answer", "error")
LEAD_SILENCE = 0.3
TRAIL_SILENCE = 1.0


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


class Phrasebook:
    """Each FAQ question rendered (espeak-ng, cached on disk) and loaded once, shared by all."""

    def __init__(self, faqs: Sequence[Faq]) -> None:
        self.faqs = list(faqs)
        self.samples: dict[str, Int16Array] = {}

    async def load(self) -> Phrasebook:
        for faq in self.faqs:
            wav = await render_speech(faq.question, "en")
            self.samples[faq.question] = await asyncio.to_thread(load_wav, wav)
        return self

    def expected(self, question: str) -> str:
        return next(f.answer for f in self.faqs if f.question == question)


@dataclass(frozen=True, slots=True)
class ConversationPlan:
    turns: int
    gap_s: tuple[float, float]
    join_timeout: float
    greeting_timeout: float
    turn_timeout: float
    start_barrier_timeout: float = 300.0


@dataclass(slots=True)
class TurnResult:
    question: str
    cause: str | None = None  # None: answered in full, in time, correctly
    latency_ms: float | None = None  # end of speech -> first agent audio
    complete_ms: float | None = None  # end of speech -> agent back to listening
    answer: str | None = None
    heard: str | None = None  # the user's final transcript (what the recogniser made of it)
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.cause is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "ok": self.ok,
            "cause": self.cause,
            "latency_ms": self.latency_ms,
            "complete_ms": self.complete_ms,
            "answer": self.answer,
            "heard": self.heard,
            "detail": self.detail,
        }


@dataclass(slots=True)
class SessionResult:
    index: int
    turns: list[TurnResult] = field(default_factory=list)
    conversation_started: float | None = None  # monotonic: first question starts
    conversation_ended: float | None = None  # monotonic: last answer over (or given up)

    @property
    def active_s(self) -> float:
        if self.conversation_started is None or self.conversation_ended is None:
            return 0.0
        return max(0.0, self.conversation_ended - self.conversation_started)


class StartBarrier:
    """Released when every session is greeted or has failed: the measured window is the part
    where all sessions talk at the same time."""

    def __init__(self, parties: int) -> None:
        self._left = parties
        self.released = asyncio.Event()

    def arrive(self) -> None:
        self._left -= 1
        if self._left <= 0:
            self.released.set()


def _fail_all(result: SessionResult, questions: Sequence[str], cause: str, detail: str) -> None:
    done = len(result.turns)
    for q in questions[done:]:
        result.turns.append(TurnResult(q, cause=cause, detail=detail))


async def _turn(
    user: SimulatedUser,
    states: AgentAttributeStates,
    book: Phrasebook,
    question: str,
    timeout: float,  # noqa: ASYNC109
) -> TurnResult:
    mark = len(states.changes)
    utterance = await user.play(
        book.samples[question],
        source=question,
        lead_silence=LEAD_SILENCE,
        trail_silence=TRAIL_SILENCE,
    )
    ended = utterance.speech_ended
    turn = TurnResult(question)
    deadline = time.monotonic() + timeout - (Stamp.now().mono - ended.mono)

    def left() -> float:
        return max(0.01, deadline - time.monotonic())

    try:
        audio = await user.first_agent_audio_after(ended, timeout=left())
        turn.latency_ms = round((audio.mono - ended.mono) * 1000.0, 1)
    except TimeoutError as exc:
        turn.cause, turn.detail = "no answer", str(exc)
    if turn.cause is None:
        try:
            transcript = await user.wait_for_transcript(
                speaker="agent", final=True, after=ended, timeout=left()
            )
            turn.answer = transcript.text
            spoke = await states.wait("speaking", after=mark, timeout=left())
            back = await states.wait("listening", after=spoke + 1, timeout=left())
            turn.complete_ms = round((states.changes[back][1].mono - ended.mono) * 1000.0, 1)
        except TimeoutError as exc:
            turn.cause, turn.detail = "incomplete answer", str(exc)
    heard = [s for s in user.transcripts(speaker="user", after=utterance.started) if s.final]
    if heard:
        turn.heard = heard[0].text
    if turn.cause is None and _words(book.expected(question)) not in _words(turn.answer or ""):
        turn.cause = "wrong answer"
        turn.detail = f"heard {turn.heard!r}"
    return turn


async def _settle(states: AgentAttributeStates, timeout: float) -> None:  # noqa: ASYNC109
    """After a failed turn: wait (bounded) for the agent to listen again, so a late answer is
    not taken for the next question's."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if states.current() == "listening":
            return
        await asyncio.sleep(0.2)


async def run_conversation(
    user: SimulatedUser,
    index: int,
    book: Phrasebook,
    plan: ConversationPlan,
    barrier: StartBarrier,
    rng: random.Random,
) -> SessionResult:
    """One user's whole session; never raises (failures become failed turns with a cause)."""
    questions = [book.faqs[(index + t) % len(book.faqs)].question for t in range(plan.turns)]
    result = SessionResult(index)
    arrived = False
    states: AgentAttributeStates | None = None
    try:
        await user.connect(timeout=plan.join_timeout)
        states = AgentAttributeStates(user)
        await user.publish_microphone()
        await user.wait_for_agent(plan.join_timeout)
    except Exception as exc:  # whatever stops the join is a failed join
        barrier.arrive()
        _fail_all(result, questions, "join", f"{type(exc).__name__}: {exc}")
        if states is not None:
            states.close()
        await user.aclose()
        return result
    try:
        try:
            await states.wait_greeting_done(plan.greeting_timeout)
        except TimeoutError as exc:
            barrier.arrive()
            arrived = True
            _fail_all(result, questions, "no greeting", str(exc))
            return result
        barrier.arrive()
        arrived = True
        await asyncio.wait_for(barrier.released.wait(), plan.start_barrier_timeout)
        await asyncio.sleep(rng.uniform(0.0, plan.gap_s[1]))  # not all in the same instant
        result.conversation_started = time.monotonic()
        for t, question in enumerate(questions):
            turn = await _turn(user, states, book, question, plan.turn_timeout)
            result.turns.append(turn)
            if not turn.ok:
                logger.info("session %d turn %d: %s (%s)", index, t, turn.cause, turn.detail)
                await _settle(states, plan.turn_timeout)
            if t + 1 < len(questions):
                await asyncio.sleep(rng.uniform(*plan.gap_s))
        result.conversation_ended = time.monotonic()
    except Exception as exc:  # a broken room fails this session's turns, not the run
        if not arrived:
            barrier.arrive()
        _fail_all(result, questions, "error", f"{type(exc).__name__}: {exc}")
        logger.warning("session %d: %s", index, exc)
    finally:
        if result.conversation_started is not None and result.conversation_ended is None:
            result.conversation_ended = time.monotonic()
        states.close()
        await user.aclose()
    return result

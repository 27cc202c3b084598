"""Load: N simulated users at once, each a full session with several turns; nothing is lost.

`LOAD_USERS` users (default 4) join at the same time through the token server, each with its own
room and FAQs. Every user waits for the agent's greeting, then types three questions one after
the other; the first user also asks one by voice. Pass: every user got an agent that greeted
and listened (no lost session), and every turn got the agent's final transcript with the right
FAQ answer (no unanswered turn). The one-line summary printed at the end is the README's figure.
Timings are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

import pytest

from common.metadata import Faq
from devstack.loopback import off_loopback_sockets
from devstack.stack import Stack
from simuser import SimulatedUser, Stamp

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

USERS = int(os.environ.get("LOAD_USERS", "4"))
TEXT_TURNS = 3
WAIT = 120.0  # per step, generous: a hang guard for a loaded machine, not a latency target

FAQS = [
    Faq(
        question="What are your opening hours?",
        answer="We are open from nine to five, Monday to Friday.",
    ),
    Faq(question="How do I reset my password?", answer="Click forgot password on the login page."),
    Faq(question="Where is the shop located?", answer="On Main Street twelve, next to the bakery."),
    Faq(question="Which payment methods do you accept?", answer="We accept cards and cash."),
]
# A distinctive piece of each answer, to recognise it in the agent's transcript.
EXPECTED = {
    FAQS[0].question: "nine to five",
    FAQS[1].question: "forgot password",
    FAQS[2].question: "Main Street",
    FAQS[3].question: "cards and cash",
}


@dataclass
class UserRun:
    index: int
    greeted: bool = False
    turns: int = 0
    answered: int = 0
    voice_turns: int = 0
    voice_answered: int = 0
    problems: list[str] = field(default_factory=list)
    answer_seconds: list[float] = field(default_factory=list)


async def _turn(user: SimulatedUser, run: UserRun, question: str, *, voice: bool) -> None:
    mark = Stamp.now()
    run.turns += 1
    if voice:
        run.voice_turns += 1
        await user.publish_microphone()
        await user.say(question, lead_silence=0.5, trail_silence=1.0)
    else:
        await user.send_text(question)
    try:
        await user.wait_for_transcript(
            speaker="agent", final=True, after=mark, contains=EXPECTED[question], timeout=WAIT
        )
    except TimeoutError:
        heard = [t.text for t in user.transcripts(speaker="agent", final=True, after=mark)]
        run.problems.append(f"user {run.index}: no answer to {question!r} (heard {heard})")
        return
    run.answered += 1
    run.voice_answered += voice
    run.answer_seconds.append(Stamp.now().mono - mark.mono)


async def _session(stack: Stack, index: int, start: asyncio.Event) -> UserRun:
    run = UserRun(index)
    await start.wait()
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    async with user:
        try:
            await user.wait_for_agent(timeout=WAIT)
            speaking = await user.wait_for_state("speaking", timeout=WAIT)
            await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=WAIT)
        except TimeoutError as exc:
            run.problems.append(f"user {index}: lost session ({exc})")
            return run
        run.greeted = True
        questions = [FAQS[(index + i) % len(FAQS)].question for i in range(TEXT_TURNS)]
        for question in questions:
            await _turn(user, run, question, voice=False)
        if index == 0:
            await _turn(user, run, FAQS[0].question, voice=True)
    return run


async def test_concurrent_users_lose_no_session_and_no_turn(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    start = asyncio.Event()
    sessions = [asyncio.create_task(_session(stack, i, start)) for i in range(USERS)]
    began = time.monotonic()
    start.set()
    runs = await asyncio.gather(*sessions)
    wall = time.monotonic() - began

    greeted = sum(r.greeted for r in runs)
    turns = sum(r.turns for r in runs)
    answered = sum(r.answered for r in runs)
    voice = (sum(r.voice_answered for r in runs), sum(r.voice_turns for r in runs))
    times = sorted(t for r in runs for t in r.answer_seconds)
    median = times[len(times) // 2] if times else float("nan")
    with capsys.disabled():
        print(
            f"\nload: {USERS} concurrent users, {greeted}/{USERS} sessions greeted, "
            f"{answered}/{turns} turns answered (voice {voice[0]}/{voice[1]}), "
            f"median answer {median:.1f}s, max {max(times, default=float('nan')):.1f}s, "
            f"wall {wall:.0f}s"
        )
    problems = [p for r in runs for p in r.problems]
    assert greeted == USERS, problems
    assert answered == turns == USERS * TEXT_TURNS + 1, problems
    assert off_loopback_sockets(stack.pids()) == []

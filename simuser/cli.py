"""`python -m simuser`: join a room as a frontend user, ask questions, print what happened.

    python -m simuser --token-url http://127.0.0.1:8080/api/token --language en \\
        --faq "What are your opening hours?|We open at nine." \\
        --say "What are your opening hours?" --save-audio out.wav --json-report report.json
    python -m simuser --sample-faqs --say "How do I reset my password?"

Like a person, the user first lets the agent finish its greeting (`--greeting-wait 0` speaks
into it instead: the agent stops and answers). Each `--send-text` and `--say` is one turn: the
user asks, then waits for the agent's final transcript and its return to `listening`. The
timeline is printed at the end; the exit code is 0 when every step succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.metadata import Faq
from devstack.sample_faqs import SAMPLE_FAQS

from .client import RpcCallError, SimulatedUser
from .recording import Stamp
from .report import format_timeline
from .token import DEFAULT_ROOM_PREFIX, TokenRequestError

__all__ = ["build_parser", "main", "parse_faq", "session_faqs"]

logger = logging.getLogger("simuser")


def parse_faq(value: str) -> Faq:
    question, sep, answer = value.partition("|")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected 'question|answer', got {value!r}")
    try:
        return Faq(question=question, answer=answer)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def session_faqs(args: argparse.Namespace) -> list[Faq]:
    """The FAQs the token asks for: the sample set (with --sample-faqs), then every --faq."""
    return [*(SAMPLE_FAQS if args.sample_faqs else ()), *args.faq]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simuser",
        description="A simulated frontend user for the talking-avatar agent.",
    )
    src = p.add_argument_group("joining (a token URL, or a ready --url and --token)")
    src.add_argument("--token-url", default="http://127.0.0.1:8080/api/token")
    src.add_argument("--url", help="LiveKit URL (with --token: skip the token server)")
    src.add_argument("--token", help="a ready access token")
    src.add_argument("--room", help="room name (default: a new <prefix>-<random>)")
    src.add_argument("--room-prefix", default=DEFAULT_ROOM_PREFIX)
    src.add_argument("--identity", help="user identity (default: user-<random>)")
    src.add_argument("--language", default="en", help="session language (default: en)")
    src.add_argument(
        "--faq", action="append", type=parse_faq, default=[], metavar="Q|A", help="repeatable"
    )
    src.add_argument(
        "--sample-faqs",
        action="store_true",
        help="add the project's sample FAQs (devstack/sample_faqs.py) before any --faq",
    )
    turns = p.add_argument_group("turns, in order: all --send-text first, then all --say")
    turns.add_argument("--send-text", action="append", default=[], metavar="TEXT")
    turns.add_argument(
        "--say", action="append", default=[], metavar="TEXT_OR_WAV", help="text or a .wav file"
    )
    turns.add_argument(
        "--greeting-wait",
        type=float,
        default=5.0,
        metavar="S",
        help="wait up to S seconds for the agent's greeting to start, then until it ends, "
        "before the first turn (0: do not wait, talk into the greeting; default: 5)",
    )
    turns.add_argument("--lead-silence", type=float, default=0.3, metavar="S")
    turns.add_argument("--trail-silence", type=float, default=0.5, metavar="S")
    waits = p.add_argument_group("waits (seconds)")
    waits.add_argument("--agent-timeout", type=float, default=30.0)
    waits.add_argument("--ready-timeout", type=float, default=30.0)
    waits.add_argument("--reply-timeout", type=float, default=60.0)
    waits.add_argument("--linger", type=float, default=1.0, help="stay after the last turn")
    out = p.add_argument_group("output")
    out.add_argument("--save-audio", type=Path, metavar="WAV", help="save the agent's audio")
    out.add_argument("--json-report", type=Path, metavar="JSON")
    out.add_argument("-v", "--verbose", action="count", default=0)
    return p


class _Run:
    def __init__(self, user: SimulatedUser, args: argparse.Namespace) -> None:
        self.user = user
        self.args = args
        self.problems: list[str] = []
        self.turns: list[dict[str, object]] = []

    async def turn(self, label: str, mark: Stamp, seq: int) -> None:
        """Wait for the agent's answer to a turn that started at `mark`."""
        user, timeout = self.user, self.args.reply_timeout
        result: dict[str, object] = {"turn": label}
        try:
            transcript = await user.wait_for_transcript(
                speaker="agent", final=True, after=mark, timeout=timeout
            )
            result["agent_text"] = transcript.text
            speaking = await user.wait_for_state("speaking", after_seq=seq, timeout=timeout)
            await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=timeout)
        except TimeoutError as exc:
            self.problems.append(f"{label}: {exc}")
        audio = user.agent_audio.first_voiced_after(mark)
        if audio is not None:
            result["first_agent_audio_s"] = round(audio.since(mark), 3)
        self.turns.append(result)

    async def let_the_greeting_finish(self) -> None:
        """As a person would: hear the agent's hello out before asking (a greeting that does
        not start within --greeting-wait is not waited for; none is not a failure)."""
        user, args = self.user, self.args
        if args.greeting_wait <= 0:
            return
        try:
            greeting = await user.wait_for_state("speaking", timeout=args.greeting_wait)
        except TimeoutError:
            logger.info("no greeting within %.1fs; going on", args.greeting_wait)
            return
        try:
            await user.wait_for_state(
                "listening", after_seq=greeting.event.seq, timeout=args.reply_timeout
            )
        except TimeoutError as exc:
            self.problems.append(f"greeting: {exc}")

    async def main(self) -> None:
        user, args = self.user, self.args
        await user.connect()
        agent = await user.wait_for_agent(args.agent_timeout)
        logger.info("agent %s is here", agent)
        try:
            await user.wait_for_state("listening", timeout=args.ready_timeout)
        except TimeoutError as exc:
            self.problems.append(f"ready: {exc}")
        await self.let_the_greeting_finish()
        if args.say:
            await user.publish_microphone()
        for text in args.send_text:
            seq, mark = user.last_seq, Stamp.now()
            try:
                await user.send_text(text)
            except RpcCallError as exc:
                self.problems.append(f"send_text {text!r}: {exc}")
                continue
            await self.turn(f"send_text {text!r}", mark, seq)
        for what in args.say:
            seq = user.last_seq
            utterance = await user.say(
                what, lead_silence=args.lead_silence, trail_silence=args.trail_silence
            )
            await self.turn(f"say {what!r}", utterance.speech_ended, seq)
        await asyncio.sleep(args.linger)


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False))


async def run(args: argparse.Namespace) -> int:
    if args.url and args.token:
        user = SimulatedUser(args.url, args.token, language=args.language)
    else:
        try:
            user = await SimulatedUser.from_token_server(
                args.token_url,
                language=args.language,
                faqs=session_faqs(args),
                room=args.room,
                identity=args.identity,
                room_prefix=args.room_prefix,
            )
        except (TokenRequestError, OSError) as exc:
            print(f"token request failed: {exc}", file=sys.stderr)
            return 1
    session = _Run(user, args)
    try:
        await session.main()
    except (TimeoutError, RpcCallError, OSError) as exc:
        session.problems.append(str(exc))
    finally:
        if args.save_audio:
            await user.save_agent_audio(args.save_audio)
        await user.aclose()

    print(format_timeline(user.recording))
    for t in session.turns:
        print(f"turn: {json.dumps(t, ensure_ascii=False)}")
    for problem in session.problems:
        print(f"PROBLEM: {problem}")
    if args.json_report:
        report = {
            "room": user.room.name,
            "turns": session.turns,
            "problems": session.problems,
            "recording": user.recording.to_dict(),
        }
        await asyncio.to_thread(_write_json, args.json_report, report)
    return 1 if session.problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.url) != bool(args.token):
        build_parser().error("--url and --token go together")
    level = logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))

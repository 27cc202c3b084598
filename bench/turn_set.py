"""A small spoken set for end-of-turn tuning, made here with espeak-ng and sox.

Two kinds of turn: complete questions, and questions with a pause in the middle of a sentence
("I would like to know ... what your opening hours are"). The agent must answer the first kind
fast and must not take the turn during the pause of the second. Each part is rendered alone,
its own leading/trailing silence trimmed, and the parts are joined with exactly the pause
asked for, so the gap the VAD hears is the one on the label. Files are cached by content.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from common.metadata import Faq

from .common import FAQS

__all__ = ["PAUSES_MS", "SpokenTurn", "build_turn_set", "turn_set_faqs"]

RATE = 24000
VOICE = "en-us"
PAUSES_MS = (300, 500, 700)

COMPLETE: tuple[tuple[str, int], ...] = (
    ("What are your opening hours?", 0),
    ("How do I reset my password?", 1),
    ("Can you tell me your opening hours?", 0),
    ("How can I reset my password?", 1),
)
# (first part, second part, FAQ index): the pause goes between the parts, mid-sentence.
PAUSED: tuple[tuple[str, str, int], ...] = (
    ("I would like to know", "what your opening hours are", 0),
    ("Could you tell me", "how I reset my password", 1),
    ("I was wondering", "what your opening hours are", 0),
    ("What are your", "opening hours?", 0),
    ("How do I reset", "my password?", 1),
)


@dataclass(frozen=True, slots=True)
class SpokenTurn:
    id: str
    kind: Literal["complete", "paused"]
    text: str
    pause_ms: int
    path: Path
    expected_answer: str


def _render(text: str, out: Path) -> None:
    """espeak-ng at 24 kHz mono, silence trimmed at both ends (sox)."""
    raw = subprocess.run(
        ["espeak-ng", "-v", VOICE, "--stdout", text], capture_output=True, check=True
    ).stdout
    subprocess.run(
        ["sox", "-t", "wav", "-", "-r", str(RATE), "-c", "1", "-b", "16", str(out),
         "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse"],
        input=raw, capture_output=True, check=True,
    )  # fmt: skip


def _join(first: Path, second: Path, pause_ms: int, out: Path) -> None:
    gap = out.with_suffix(".gap.wav")
    subprocess.run(
        ["sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(gap),
         "trim", "0", f"{pause_ms / 1000:.3f}"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(["sox", str(first), str(gap), str(second), str(out)], check=True)
    gap.unlink()


def _cached(cache: Path, key: str) -> Path:
    return cache / f"{hashlib.sha1(key.encode()).hexdigest()[:12]}.wav"


def build_turn_set(cache: Path, pauses_ms: tuple[int, ...] = PAUSES_MS) -> list[SpokenTurn]:
    cache.mkdir(parents=True, exist_ok=True)
    turns: list[SpokenTurn] = []
    for i, (text, faq) in enumerate(COMPLETE):
        path = _cached(cache, f"complete|{VOICE}|{text}")
        if not path.exists():
            _render(text, path)
        turns.append(SpokenTurn(f"c{i}", "complete", text, 0, path, FAQS[faq].answer))
    for i, (first, second, faq) in enumerate(PAUSED):
        parts = []
        for part in (first, second):
            part_path = _cached(cache, f"part|{VOICE}|{part}")
            if not part_path.exists():
                _render(part, part_path)
            parts.append(part_path)
        for pause in pauses_ms:
            path = _cached(cache, f"paused|{VOICE}|{first}|{second}|{pause}")
            if not path.exists():
                _join(parts[0], parts[1], pause, path)
            turns.append(
                SpokenTurn(
                    f"p{i}-{pause}", "paused", f"{first} ... {second}", pause, path,
                    FAQS[faq].answer,
                )
            )  # fmt: skip
    return turns


def turn_set_faqs() -> list[Faq]:
    """The session's FAQs: the benchmark's two, plus each whole sentence of the set as a
    question with the same answer, so the stand-in's prompt-built recogniser knows the words
    (OpenAI's would hear them anyway) and the answer tells which FAQ was understood."""
    faqs = list(FAQS)
    for text, faq in COMPLETE[2:]:
        faqs.append(Faq(question=text, answer=FAQS[faq].answer))
    for first, second, faq in PAUSED:
        faqs.append(Faq(question=f"{first} {second}", answer=FAQS[faq].answer))
    return faqs

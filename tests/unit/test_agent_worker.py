from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from agent.pipeline import stt_vocabulary_hint
from agent.worker import _at_most_jobs
from common.metadata import Faq

pytestmark = pytest.mark.unit


@dataclass
class FakeRequest:
    id: str = "AJ_1"
    answers: list[str] = field(default_factory=list)

    async def accept(self) -> None:
        self.answers.append("accept")

    async def reject(self, *, terminate: bool = True) -> None:
        self.answers.append(f"reject terminate={terminate}")


@dataclass
class FakeServer:
    active_jobs: list[object]


@pytest.mark.parametrize(
    ("running", "answer"), [(0, "accept"), (1, "accept"), (2, "reject terminate=False")]
)
async def test_max_jobs_guard_accepts_below_the_cap_only(running: int, answer: str) -> None:
    request = FakeRequest()
    guard = _at_most_jobs(FakeServer([object()] * running), 2)  # type: ignore[arg-type]
    await guard(request)  # type: ignore[arg-type]
    assert request.answers == [answer]


def test_stt_hint_lists_the_questions_one_per_line() -> None:
    faqs = [
        Faq(question="What  are your\nhours?", answer="9-5"),
        Faq(question="Refunds?", answer="Yes"),
    ]
    assert stt_vocabulary_hint(faqs) == "What are your hours?\nRefunds?"


def test_stt_hint_is_bounded() -> None:
    faqs = [Faq(question="q" * 300, answer="a") for _ in range(50)]
    assert 0 < len(stt_vocabulary_hint(faqs)) <= 2000
    assert stt_vocabulary_hint([]) == ""

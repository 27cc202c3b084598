"""The understanding eval: its committed set, the set loader's checks, the grader, the summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.understanding.__main__ import summarize
from bench.understanding.dataset import DatasetError, Kind, Split, load_sets
from bench.understanding.grader import Outcome, grade
from bench.understanding.runner import ItemResult

pytestmark = pytest.mark.unit

SETS = load_sets()
GYM = next(s for s in SETS if s.id == "gym")


def test_bench_understanding_set_meets_the_issue_sizes() -> None:
    items = [i for s in SETS for i in s.items]
    assert len(SETS) >= 10
    assert all(4 <= len(s.faqs) <= 8 for s in SETS)
    assert sum(i.kind is Kind.PARAPHRASE for i in items) >= 60
    assert {s.language for s in SETS} >= {"en", "es", "fr"}
    assert any(i.language != s.language for s in SETS for i in s.items)  # cross-language
    for kind in Kind:
        halves = {i.split for i in items if i.kind is kind}
        assert halves == {Split.TUNE, Split.TEST}, kind


def _write(tmp_path: Path, **changes: object) -> Path:
    doc = json.loads((Path("bench/understanding/sets") / "gym.json").read_text())
    doc.update(changes)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    return tmp_path


def _items(kind: str, expect: str | None, split: str = "tune") -> list[dict[str, object]]:
    item = {"id": "a", "kind": kind, "text": "q", "language": "en"}
    return [{**item, "expect": expect, "split": split}]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"language": "xx"}, "unsupported language"),
        ({"items": _items("paraphrase", "nope")}, "unknown FAQ"),
        ({"items": _items("uncovered", "hours")}, "expect null"),
        ({"items": _items("near_miss", None, "half")}, "split"),
    ],
)
def test_bench_understanding_loader_names_file_and_problem(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(DatasetError, match=rf"(?s)bad\.json.*{message}"):
        load_sets(_write(tmp_path, **changes))


def test_bench_understanding_loader_rejects_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no FAQ sets"):
        load_sets(tmp_path)


def test_bench_understanding_grader_outcomes() -> None:
    hours, price = GYM.faq("hours"), GYM.faq("price")
    assert grade(hours.answer, GYM, "hours") is Outcome.RIGHT
    assert grade(f"Sure! {hours.answer} Anything else?", GYM, "hours") is Outcome.RIGHT
    rephrased = "We're open Monday to Friday, from 6 am to 10 pm."
    assert grade(rephrased, GYM, "hours") is Outcome.RIGHT
    assert grade(price.answer, GYM, "hours") is Outcome.WRONG_FAQ
    assert grade(price.answer, GYM, None) is Outcome.WRONG_FAQ  # an unanswerable question answered
    decline = (
        'I don\'t know that one. I can help with questions like "What are your opening hours?"'
    )
    assert grade(decline, GYM, "hours") is Outcome.DECLINED
    assert grade(decline, GYM, None) is Outcome.DECLINED
    assert grade("", GYM, None) is Outcome.DECLINED
    assert grade(None, GYM, "hours") is Outcome.ERROR


def test_bench_understanding_summary_counts_per_mode_and_half() -> None:
    def result(kind: str, split: str, outcome: Outcome) -> ItemResult:
        return ItemResult(
            "gym", "x", kind, split, "text", "en", None, None, "r", outcome, 1.0, None
        )

    summary = summarize(
        [
            result("paraphrase", "tune", Outcome.RIGHT),
            result("paraphrase", "tune", Outcome.WRONG_FAQ),
            result("paraphrase", "test", Outcome.ERROR),
            result("uncovered", "tune", Outcome.DECLINED),
        ]
    )
    tune = summary["text/tune"]
    assert tune["paraphrase"]["n"] == 2
    assert tune["paraphrase"]["right_rate"] == 0.5
    assert tune["paraphrase"]["wrong_faq_rate"] == 0.5
    assert tune["uncovered"]["declined"] == 1
    assert summary["text/test"]["paraphrase"]["error"] == 1

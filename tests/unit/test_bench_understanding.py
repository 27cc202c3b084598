"""The understanding eval: its committed set, the set loader's checks, the grader, the summary,
the probe's ensemble search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.understanding.__main__ import summarize
from bench.understanding.dataset import DatasetError, Kind, Split, load_sets
from bench.understanding.grader import Outcome, grade
from bench.understanding.probe import EnsembleRule, Row, ensemble, ensemble_outcomes
from bench.understanding.runner import ItemResult
from standin.brain import Rule

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


SHIPPED = Rule(0.86, 0.025, 95.0, 80.0)


def _row(kind: str, expect: int | None, sims: list[float], language: str = "en") -> Row:
    return Row("x", kind, language, expect, sims, sims, [0.0] * len(sims), [True] * len(sims))


def test_bench_understanding_ensemble_answers_only_when_both_models_agree() -> None:
    # e5 alone declines all three (0.85 < 0.86); the vote answers where the second model agrees.
    e5 = [
        _row("paraphrase", 0, [0.85, 0.70]),
        _row("paraphrase", 0, [0.85, 0.70]),
        _row("paraphrase", 0, [0.85, 0.70], language="es"),
        # A near-edit of FAQ 0's wording (fuzzy 85): e5's veto stands.
        Row("x", "near_miss", "en", None, [0.85, 0.70], [0.85, 0.70], [85.0, 0.0], [True, True]),
    ]
    second = [
        _row("paraphrase", 0, [0.50, 0.20]),
        _row("paraphrase", 0, [0.20, 0.50]),  # picks another FAQ
        _row("paraphrase", 0, [0.50, 0.20]),  # Spanish session: English model has no vote
        _row("near_miss", None, [0.50, 0.20]),
    ]
    cut = EnsembleRule(0.84, 0.01, 0.4, 0.2)
    counts = ensemble_outcomes(e5, second, SHIPPED, cut)
    assert (counts["right"], counts["near_miss_answered"]) == (1, 0)
    too_high = EnsembleRule(0.84, 0.01, 0.6, 0.2)
    assert ensemble_outcomes(e5, second, SHIPPED, too_high)["right"] == 0


def test_bench_understanding_ensemble_search_keeps_uncovered_and_wrong_faq_at_zero() -> None:
    e5 = [
        _row("paraphrase", 0, [0.85, 0.70]),
        _row("uncovered", None, [0.84, 0.70]),  # agreed on, lower e5 cosine
        _row("paraphrase", 1, [0.85, 0.70]),  # agreed on, wrong FAQ, higher second-model lead
        # Right, but only a rule answering the two above would answer these:
        _row("paraphrase", 0, [0.83, 0.70]),  # e5 cosine below the uncovered one's
        _row("paraphrase", 0, [0.85, 0.70]),  # second-model lead below the wrong FAQ's
    ]
    second = [
        _row("paraphrase", 0, [0.50, 0.20]),
        _row("uncovered", None, [0.50, 0.20]),
        _row("paraphrase", 1, [0.50, 0.45]),
        _row("paraphrase", 0, [0.50, 0.20]),
        _row("paraphrase", 0, [0.50, 0.47]),
    ]
    (best,) = ensemble(e5, second, SHIPPED)
    assert best["right"] == 1
    rule = EnsembleRule(*(best[k] for k in ("e5_similarity", "e5_margin",
                                             "second_similarity", "second_margin")))  # fmt: skip
    counts = ensemble_outcomes(e5, second, SHIPPED, rule)
    assert (counts["wrong_faq"], counts["uncovered_answered"], counts["right"]) == (0, 0, 1)

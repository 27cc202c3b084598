"""`python -m bench.understanding` (`make eval-understanding`): does the agent understand
paraphrased questions, and does it decline what its FAQs do not answer?

Asks the eval set (`bench/understanding/sets/`) through the embedded stand-in (started with
devstack), by text and by voice, and again through a real OpenAI-compatible endpoint when
OPENAI_API_KEY is set (OPENAI_BASE_URL optional); prints right / wrong-FAQ / declined per
half and writes `bench/results/understanding.json`. Also times the stand-in brain in process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, get_args

from agent.settings import UPLOAD_STT_MODEL, Settings
from bench.common import ResultFile, base_parser, percentile, setup_logging
from devstack.stack import Stack, StackConfig
from standin.app import build_brain
from standin.settings import Settings as StandinSettings

from .dataset import FaqSet, Kind, Split, load_sets
from .grader import Outcome
from .runner import Endpoint, ItemResult, Mode, as_dicts, run_endpoint

logger = logging.getLogger("bench.understanding")

NAME = "understanding"


def summarize(results: Sequence[ItemResult]) -> dict[str, Any]:
    """Per mode and half: outcome counts for covered, near-miss and uncovered questions."""
    out: dict[str, Any] = {}
    for mode in sorted({r.mode for r in results}):
        for split in (Split.TUNE.value, Split.TEST.value):
            rows = [r for r in results if r.mode == mode and r.split == split]
            block: dict[str, Any] = {}
            for kind in Kind:
                counts = Counter(r.outcome.value for r in rows if r.kind == kind.value)
                n = sum(counts.values())
                block[kind.value] = {"n": n, **{o.value: counts.get(o.value, 0) for o in Outcome}}
            covered = block[Kind.PARAPHRASE.value]
            if covered["n"]:
                covered["right_rate"] = round(covered["right"] / covered["n"], 3)
                covered["wrong_faq_rate"] = round(covered["wrong_faq"] / covered["n"], 3)
            out[f"{mode}/{split}"] = block
    return out


def _line(key: str, block: dict[str, Any]) -> str:
    c, nm, un = block["paraphrase"], block["near_miss"], block["uncovered"]

    def tail(b: dict[str, Any]) -> str:
        return f" error {b['error']}" if b["error"] else ""

    return (
        f"  {key:<11} covered {c['n']:>3}: right {c['right']:>3}  wrong-FAQ {c['wrong_faq']:>2}  "
        f"declined {c['declined']:>3}{tail(c)} | near-miss {nm['n']:>2}: declined "
        f"{nm['declined']:>2}  answered {nm['right'] + nm['wrong_faq']:>2}{tail(nm)} | uncovered "
        f"{un['n']:>2}: declined {un['declined']:>2}  answered {un['right'] + un['wrong_faq']:>2}"
        f"{tail(un)}"
    )


def brain_timing(sets: Sequence[FaqSet]) -> dict[str, Any]:
    """The stand-in brain's own time per turn, in process (first turn of a set embeds its FAQs)."""
    from agent.prompts import render_instructions
    from common.languages import get_language

    brain = build_brain(StandinSettings(_env_file=None))  # type: ignore[call-arg]
    first: list[float] = []
    warm: list[float] = []
    for faq_set in sets:
        system = render_instructions(get_language(faq_set.language), faq_set.common_faqs)
        for n, item in enumerate(faq_set.items):
            start = time.perf_counter()
            brain.answer(system, item.text)
            (first if n == 0 else warm).append((time.perf_counter() - start) * 1000)
    return {
        "embeddings": brain.embedder is not None,
        "warm_turn_ms": {
            "p50": round(percentile(warm, 50), 1),
            "p95": round(percentile(warm, 95), 1),
        },
        "first_turn_of_set_ms": {
            "p50": round(percentile(first, 50), 1),
            "max": round(max(first), 1),
        },
    }


async def _standin(sets: Sequence[FaqSet], modes: Sequence[Mode]) -> list[ItemResult]:
    stack = Stack(StackConfig(services=("standin",), run_livekit=False))
    await asyncio.to_thread(stack.start)
    try:
        endpoint = Endpoint("standin", stack.standin_url, "standin", _llm_model(), UPLOAD_STT_MODEL)
        return await run_endpoint(endpoint, sets, modes)
    finally:
        await asyncio.to_thread(stack.stop)


def _llm_model() -> str:
    return str(Settings.model_fields["llm_model"].default)


def main() -> None:
    parser = base_parser(__doc__ or NAME)
    parser.add_argument("--mode", choices=get_args(Mode), action="append", help="default: both")
    parser.add_argument("--set", action="append", help="only these set ids")
    args = parser.parse_args()
    setup_logging(args.verbose)
    sets = [s for s in load_sets() if not args.set or s.id in args.set]
    modes: list[Mode] = args.mode or list(get_args(Mode))
    key = os.environ.get("OPENAI_API_KEY")
    result = ResultFile(NAME, {"sets": [s.id for s in sets], "modes": modes}, args.results_dir)

    endpoints: dict[str, list[ItemResult]] = {"standin": asyncio.run(_standin(sets, modes))}
    if key:
        real = Endpoint(
            "openai",
            os.environ.get("OPENAI_BASE_URL") or None,
            key,
            os.environ.get("LLM_MODEL") or _llm_model(),
            os.environ.get("STT_MODEL") or UPLOAD_STT_MODEL,
        )
        endpoints["openai"] = asyncio.run(run_endpoint(real, sets, modes))
    else:
        print("OPENAI_API_KEY not set: grading a real endpoint is skipped (stand-in only).")

    timing = brain_timing(sets)
    for name, results in endpoints.items():
        summary = summarize(results)
        per_set = {s.id: summarize([r for r in results if r.set == s.id]) for s in sets}
        result.data[name] = {"summary": summary, "per_set": per_set, "items": as_dicts(results)}
        print(f"{name}:")
        for block_key, block in summary.items():
            print(_line(block_key, block))
            covered = block["paraphrase"]
            if covered["n"]:
                result.row(
                    f"{name} {block_key} covered right / wrong-FAQ",
                    f"{covered['right']}/{covered['n']} / {covered['wrong_faq']}",
                )
    result.data["brain_timing"] = timing
    result.row("stand-in brain per turn p50/p95 (ms)",
               f"{timing['warm_turn_ms']['p50']}/{timing['warm_turn_ms']['p95']}")  # fmt: skip
    print(f"brain: {timing}")
    print(f"wrote {result.write()}")


if __name__ == "__main__":
    main()

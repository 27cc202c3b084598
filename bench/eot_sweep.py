"""End-of-turn sweep: false cut-offs against latency for endpointing settings.

`python -m bench.eot_sweep` (about 2 minutes per configuration).

One livekit-server and one stand-in. For each configuration (turn detector on/off, VAD
silence, endpointing min/max delay) our real agent worker (`bench.agents.ours`) is started with
those settings as environment variables, and one simulated user speaks the spoken set of
`bench.turn_set` into its microphone, one turn at a time:

- **false cut-off**: during a paused turn the agent takes the turn (its `lk.agent.state`
  becomes `thinking` or `speaking`) after the user started and before the user's speech ended,
  i.e. during the mid-sentence pause;
- **latency**: end of the user's speech -> first non-silent agent audio at the user, for every
  turn that was not cut off.

A turn whose answer never comes is a failed turn (reported, never counted as fast). After the
first answer audio, the user interrupts (the `interrupt` RPC) and waits for the agent to be
quiet, so each turn starts from listening. The result JSON has every turn; the plot draws each
configuration's p50 latency against its false cut-off rate, the chosen defaults marked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devstack.paths import CACHE_DIR
from devstack.stack import Stack, StackConfig
from simuser import SimulatedUser, Stamp

from .common import (
    AgentAttributeStates,
    ResultFile,
    base_parser,
    git_block,
    setup_logging,
    summarize,
)
from .plotting import plt
from .stacks import bench_agent_service, direct_user
from .turn_set import SpokenTurn, build_turn_set, turn_set_faqs

logger = logging.getLogger("bench.eot_sweep")

NAME = "eot_sweep"
AGENT_NAME = "bench-eot"
ANSWER_TIMEOUT_S = 20.0
QUIET_S = 1.5


@dataclass(frozen=True, slots=True)
class EotConfig:
    turn_detector: str  # "model" | "vad"
    vad_silence: float
    min_delay: float
    max_delay: float

    @property
    def label(self) -> str:
        head = "model" if self.turn_detector == "model" else "VAD only"
        tail = f" max {self.max_delay:g}" if self.turn_detector == "model" else ""
        return f"{head}: silence {self.vad_silence:g} min {self.min_delay:g}{tail}"

    def env(self) -> dict[str, str]:
        return {
            "AGENT_TURN_DETECTOR": self.turn_detector,
            "AGENT_VAD_MIN_SILENCE_SECONDS": str(self.vad_silence),
            "AGENT_ENDPOINTING_MIN_DELAY_SECONDS": str(self.min_delay),
            "AGENT_ENDPOINTING_MAX_DELAY_SECONDS": str(self.max_delay),
        }


# The framework's defaults first (the "before"), then tighter settings with and without the
# end-of-turn model.
DEFAULT_GRID: tuple[EotConfig, ...] = (
    EotConfig("model", 0.55, 0.5, 3.0),
    EotConfig("model", 0.4, 0.3, 1.5),
    EotConfig("model", 0.3, 0.2, 1.0),
    EotConfig("model", 0.25, 0.1, 0.7),
    EotConfig("vad", 0.55, 0.5, 3.0),
    EotConfig("vad", 0.4, 0.4, 3.0),
    EotConfig("vad", 0.3, 0.4, 3.0),
    EotConfig("vad", 0.3, 0.2, 3.0),
    EotConfig("vad", 0.25, 0.1, 3.0),
)


def parse_config(text: str) -> EotConfig:
    """`model:0.4:0.3:1.5` or `vad:0.3:0.2` (detector:silence:min[:max])."""
    parts = text.split(":")
    max_delay = float(parts[3]) if len(parts) > 3 else 3.0
    return EotConfig(parts[0], float(parts[1]), float(parts[2]), max_delay)


async def settle(states: AgentAttributeStates) -> None:
    """Until the agent is listening and nothing changed for `QUIET_S` (bounded)."""
    for _ in range(int(ANSWER_TIMEOUT_S / 0.25)):
        last = states.changes[-1][1].mono if states.changes else 0.0
        if states.current() == "listening" and Stamp.now().mono - last >= QUIET_S:
            return
        await asyncio.sleep(0.25)
    logger.warning("agent not quiet after %.0fs", ANSWER_TIMEOUT_S)


async def one_turn(
    user: SimulatedUser, states: AgentAttributeStates, turn: SpokenTurn
) -> dict[str, Any]:
    mark = len(states.changes)
    utterance = await user.say(turn.path, lead_silence=0.3, trail_silence=0.3)
    start, end = utterance.speech_started.mono, utterance.speech_ended.mono
    took = [
        (state, at.mono - start)
        for state, at in states.changes[mark:]
        if state in ("thinking", "speaking") and start < at.mono < end
    ]
    row: dict[str, Any] = {
        "id": turn.id,
        "kind": turn.kind,
        "pause_ms": turn.pause_ms,
        "speech_s": round(end - start, 3),
        "cut_off": bool(took),
        "took_turn_at_s": round(took[0][1], 3) if took else None,
        "latency_ms": None,
        "answer": None,
        "answered_expected": None,
        "failed": False,
    }
    try:
        audio = await user.first_agent_audio_after(utterance.speech_ended, timeout=ANSWER_TIMEOUT_S)
        row["latency_ms"] = round((audio.mono - end) * 1000, 1)
        answer = await user.wait_for_transcript(
            speaker="agent", after=utterance.started, timeout=ANSWER_TIMEOUT_S
        )
        row["answer"] = answer.text
        row["answered_expected"] = turn.expected_answer.split()[:3] == answer.text.split()[:3]
    except TimeoutError:
        row["failed"] = not row["cut_off"]
    if row["cut_off"]:
        row["latency_ms"] = None  # answering mid-sentence is a failure, not a fast turn
    try:
        await user.interrupt()
    except Exception as exc:  # the answer may have ended already; the turn is recorded
        logger.debug("interrupt: %s", exc)
    await settle(states)
    return row


async def run_config(
    stack: Stack, config: EotConfig, turns: list[SpokenTurn], rng: random.Random, reps: int
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    load: list[float] = []
    user = direct_user(stack, AGENT_NAME, faqs=turn_set_faqs())
    states = AgentAttributeStates(user)
    try:
        async with user:
            await user.publish_microphone()
            await user.wait_for_agent(60)
            await states.wait_greeting_done(60)
            await settle(states)
            for rep in range(reps):
                order = list(turns)
                rng.shuffle(order)
                for turn in order:
                    row = await one_turn(user, states, turn)
                    row["rep"] = rep
                    rows.append(row)
                    logger.info(
                        "%s | %s: cut_off=%s latency=%s answer=%r",
                        config.label, turn.id, row["cut_off"], row["latency_ms"], row["answer"],
                    )  # fmt: skip
                    load.append(os.getloadavg()[0])
    except TimeoutError as exc:
        logger.warning("%s: session failed: %s", config.label, exc)
    finally:
        states.close()
    return {"config": asdict(config), "label": config.label, "turns": rows, "load_1min": load}


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion: honest for the small counts of a sweep."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 3), round(min(1.0, centre + half), 3))


def score(result: dict[str, Any], planned: int) -> dict[str, Any]:
    rows = result["turns"]
    paused = [r for r in rows if r["kind"] == "paused"]
    cut = [r for r in paused if r["cut_off"]]
    latencies = [r["latency_ms"] for r in rows if r["latency_ms"] is not None]
    complete = [r["latency_ms"] for r in rows if r["kind"] == "complete" and r["latency_ms"]]
    by_pause: dict[str, float | None] = {}
    for pause in sorted({r["pause_ms"] for r in paused}):
        group = [r for r in paused if r["pause_ms"] == pause]
        by_pause[str(pause)] = round(sum(r["cut_off"] for r in group) / len(group), 3)
    return {
        "planned_turns": planned,
        "turns": len(rows),
        "failed_turns": planned - len(rows) + sum(r["failed"] for r in rows),
        "paused_turns": len(paused),
        "false_cutoff_rate": round(len(cut) / len(paused), 3) if paused else None,
        "false_cutoff_ci95": wilson(len(cut), len(paused)),
        "false_cutoff_by_pause_ms": by_pause,
        "latency_ms": summarize(latencies),
        "latency_complete_ms": summarize(complete),
        "answered_expected": sum(bool(r["answered_expected"]) for r in rows),
        "load_1min_mean": round(sum(result["load_1min"]) / len(result["load_1min"]), 2)
        if result["load_1min"]
        else None,
    }


def choose(results: list[dict[str, Any]], max_cutoff: float) -> int | None:
    """The fastest configuration (p50) within the false cut-off budget, with no failed turn."""
    ok = [
        (r["score"]["latency_ms"]["p50"], i)
        for i, r in enumerate(results)
        if r["score"]["false_cutoff_rate"] is not None
        and r["score"]["false_cutoff_rate"] <= max_cutoff
        and r["score"]["latency_ms"].get("p50") is not None
        and r["score"]["failed_turns"] == 0
    ]
    return min(ok)[1] if ok else None


def plot(results: list[dict[str, Any]], chosen: int | None, path: Path, caption: str) -> None:
    fig, (ax, side) = plt.subplots(1, 2, figsize=(12, 5.4), gridspec_kw={"width_ratios": [3, 2]})
    legend_lines: list[str] = []
    for i, r in enumerate(results):
        s = r["score"]
        p50 = s["latency_ms"].get("p50")
        if p50 is None or s["false_cutoff_rate"] is None:
            continue
        x = 100 * s["false_cutoff_rate"]
        model = r["config"]["turn_detector"] == "model"
        ax.scatter([x], [p50], marker="o" if model else "s", s=60,
                   color="tab:blue" if model else "tab:orange",
                   edgecolor="black" if i == chosen else "none", linewidth=2)  # fmt: skip
        p95 = s["latency_ms"].get("p95")
        if p95 is not None:
            ax.plot([x, x], [p50, p95], color="grey", linewidth=0.8)
        low, high = s.get("false_cutoff_ci95", (None, None))
        if low is not None and high is not None:
            ax.plot([100 * low, 100 * high], [p50, p50], color="grey", linewidth=0.6, alpha=0.6)
        ax.annotate(str(i + 1), (x, p50), textcoords="offset points", xytext=(5, 3), fontsize=8)
        legend_lines.append(
            f"{i + 1:>2}. {r['label']}{'  <- chosen' if i == chosen else ''}\n"
            f"    cut-offs {100 * s['false_cutoff_rate']:.0f} %, p50 {p50:.0f} ms"
        )
    ax.scatter([], [], marker="o", color="tab:blue", label="turn detector model")
    ax.scatter([], [], marker="s", color="tab:orange", label="VAD only")
    ax.axvline(10, color="red", linestyle=":", linewidth=1, label="10 % budget")
    ax.set_xlabel("false cut-offs on the mid-sentence-pause set, % (line: 95% Wilson interval)")
    ax.set_ylabel("end of speech -> first agent audio, ms (p50; line up to p95)")
    ax.set_title("End-of-turn settings: latency against false cut-offs")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    side.axis("off")
    side.text(0, 1, "\n".join(legend_lines), va="top", ha="left", fontsize=7.5,
              family="monospace")  # fmt: skip
    fig.text(0.01, 0.01, caption, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rescore(results_dir: Path, max_cutoff: float) -> None:
    """Apply the current scoring and plot to a finished run (its machine facts kept)."""
    path = results_dir / f"{NAME}.json"
    body = json.loads(path.read_text())
    results = body["data"]["results"]
    planned = len(body["parameters"]["turn_set"]) * body["parameters"]["reps"]
    for r in results:
        r["score"] = score(r, planned)
    chosen = choose(results, max_cutoff)
    body["data"]["chosen"] = chosen
    body["summary"] = summary_rows(results, chosen)
    m = body["machine"]
    machines = [run["machine"] for run in body["data"].get("runs", [])] or [m]
    body = {"benchmark": body["benchmark"], "git": git_block(m), **body}
    body["git"]["runs"] = [git_block(machine) for machine in machines]
    caption = " | ".join(_run_caption(machine) for machine in machines)
    plot(results, chosen, results_dir / f"{NAME}.png", caption)
    path.write_text(json.dumps(body, indent=1, default=str) + "\n")
    for row in body["summary"]:
        print(f"{row['metric']}: {row['value']}  {row['note']}")


def _run_caption(m: dict[str, Any]) -> str:
    commit = (m.get("git_commit") or "?")[:10] + ("+dirty" if m.get("git_dirty") else "")
    return f"{m['date']} · {commit} · {m['nproc']} CPU · load {m['load_avg_start']}"


def summary_rows(results: list[dict[str, Any]], chosen: int | None) -> list[dict[str, Any]]:
    rows = []
    for i, r in enumerate(results):
        s = r["score"]
        rate = s["false_cutoff_rate"]
        low, high = s.get("false_cutoff_ci95", (0.0, 1.0))
        rows.append(
            {
                "metric": r["label"] + ("  <- chosen" if i == chosen else ""),
                "value": f"p50 {s['latency_ms'].get('p50') or float('nan'):.0f} / "
                f"p95 {s['latency_ms'].get('p95') or float('nan'):.0f} ms",
                "baseline": "",
                "note": (
                    f"false cut-offs {100 * rate:.0f} % [{100 * low:.0f}, {100 * high:.0f}]"
                    f" by pause {s['false_cutoff_by_pause_ms']}"
                    if rate is not None
                    else "no paused turns"
                )
                + f"; {s['failed_turns']} failed; load {s['load_1min_mean']}",
            }
        )
    return rows


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else NAME)
    parser.add_argument(
        "--config", action="append", type=parse_config, default=None,
        help="detector:silence:min[:max], e.g. model:0.4:0.3:1.5 (repeatable; default grid)",
    )  # fmt: skip
    parser.add_argument("--reps", type=int, default=1, help="passes over the set per config")
    parser.add_argument("--max-cutoff", type=float, default=0.10, help="false cut-off budget")
    parser.add_argument(
        "--rescore", action="store_true",
        help="re-score, re-choose and re-draw the existing result JSON (no new turns)",
    )  # fmt: skip
    args = parser.parse_args()
    setup_logging(args.verbose)
    if args.rescore:
        rescore(args.results_dir, args.max_cutoff)
        return
    rng = random.Random(args.seed)
    configs: list[EotConfig] = args.config or list(DEFAULT_GRID)
    turns = build_turn_set(CACHE_DIR / "eot-turns")
    result = ResultFile(
        NAME,
        {
            "configs": [asdict(c) for c in configs],
            "reps": args.reps,
            "max_cutoff": args.max_cutoff,
            "turn_set": [
                {"id": t.id, "kind": t.kind, "text": t.text, "pause_ms": t.pause_ms} for t in turns
            ],
        },
        results_dir=args.results_dir,
    )
    events_dir = CACHE_DIR / "bench-events" / NAME
    shutil.rmtree(events_dir, ignore_errors=True)
    events_dir.mkdir(parents=True)
    results: list[dict[str, Any]] = []
    with Stack(StackConfig(services=("standin",))) as stack:
        for config in configs:
            service = bench_agent_service(
                stack, "ours", agent_name=AGENT_NAME, events_dir=events_dir, env=config.env()
            )
            service.start(timeout=120)
            try:
                out = asyncio.run(run_config(stack, config, turns, rng, args.reps))
            finally:
                service.stop()
            out["score"] = score(out, len(turns) * args.reps)
            logger.info("%s -> %s", config.label, out["score"])
            results.append(out)
    chosen = choose(results, args.max_cutoff)
    result.data = {"results": results, "chosen": chosen}
    result.summary = summary_rows(results, chosen)
    result.finish(lambda path, caption: plot(results, chosen, path, caption))


if __name__ == "__main__":
    main()

"""Voice turn latency, ours vs the framework's plain pipeline, in the same run.

`python -m bench.voice_turn` (about 7 minutes with the defaults).

One livekit-server and one stand-in; two workers on it: ours (`bench.agents.ours`: the real
`agent.worker` with timing capture) and the baseline (`bench.agents.baseline`). Sessions
alternate between them; in each, the simulated user waits for the greeting to end, then speaks
FAQ questions into its microphone, one turn at a time.

Per turn, end of user speech (the last non-silent sample's pacing time) -> first non-silent agent
audio frame at the user, split into (wall clocks of the same machine):

- capture + VAD: end of speech -> the agent's VAD end of speech (`stopped_speaking_at`);
- VAD silence + STT: `transcription_delay` (VAD end of speech -> final transcript; the STT
  request only starts once the VAD has heard `min_silence_duration`, 0.55 s, of silence);
- endpointing: `end_of_turn_delay` - `transcription_delay` (turn detector, endpointing delay);
- LLM first token: `llm_node_ttft`; TTS first byte: `tts_node_ttfb`;
- agent other: the rest of the agent's `e2e_latency` (scheduling, playout start; negative when
  preemptive generation overlaps the LLM with endpointing);
- transport out: the agent's `started_speaking_at` -> first audio frame at the user.

The stand-in's `X-Processing-Ms` headers (server-side STT, chat first byte, TTS first byte) are
recorded alongside. "What our additions cost" is the difference of medians ours - baseline per
component, with a 95% bootstrap interval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

from devstack.paths import CACHE_DIR
from devstack.stack import Stack, StackConfig

from .common import (
    QUESTIONS,
    AgentAttributeStates,
    ResultFile,
    TurnSample,
    base_parser,
    bootstrap_median_diff,
    fmt_ms,
    session_bootstrap,
    setup_logging,
    summarize,
    voice_turn,
)
from .plotting import plt
from .stacks import bench_agent_service, direct_user

logger = logging.getLogger("bench.voice_turn")

NAME = "voice_turn"
AGENTS = {"ours": "bench-ours", "baseline": "bench-baseline"}
COMPONENTS = (
    "capture_vad",
    "stt",
    "endpointing",
    "llm_ttft",
    "tts_ttfb",
    "agent_other",
    "transport_out",
)
LABELS = {
    "capture_vad": "capture + VAD",
    "stt": "VAD silence + STT",
    "endpointing": "endpointing",
    "llm_ttft": "LLM first token",
    "tts_ttfb": "TTS first byte",
    "agent_other": "agent other",
    "transport_out": "transport out",
}


async def run_session(stack: Stack, which: str, turns: int, rng: random.Random) -> dict[str, Any]:
    user = direct_user(stack, AGENTS[which])
    states = AgentAttributeStates(user)
    samples: list[TurnSample] = []
    room = ""
    try:
        async with user:
            room = user.room.name
            await user.publish_microphone()
            await user.wait_for_agent(60)
            await states.wait_greeting_done(60)
            await asyncio.sleep(0.5)
            for i in range(turns):
                sample = await voice_turn(user, states, QUESTIONS[i % len(QUESTIONS)])
                samples.append(sample)
                logger.info(
                    "%s turn %d: %s ms (%r)",
                    which,
                    i + 1,
                    None if sample.latency_ms is None else round(sample.latency_ms),
                    sample.answer,
                )
                await asyncio.sleep(rng.uniform(0.3, 0.8))
    except TimeoutError as exc:
        logger.warning("%s session %s failed: %s", which, room, exc)
    finally:
        states.close()
    # Turns never spoken because the session failed count as failed turns too.
    return {
        "agent": which,
        "room": room,
        "planned_turns": turns,
        "turns": [s.to_dict() for s in samples],
    }


def load_events(events_dir: Path) -> dict[str, list[dict[str, Any]]]:
    by_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(events_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                by_room[event["room"]].append(event)
    for events in by_room.values():
        events.sort(key=lambda e: e["wall_ms"])
    return by_room


def breakdown(turn: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The components of one turn from the agent's events in its room (None if incomplete)."""
    end = turn["speech_ended_wall_ms"]
    audio = turn["first_audio_wall_ms"]
    if audio is None:
        return None
    user_item = next(
        (
            e
            for e in events
            if e["kind"] == "item"
            and e["role"] == "user"
            and e["wall_ms"] > end
            and "stopped_speaking_at" in e["metrics"]
        ),
        None,
    )
    reply = next(
        (
            e
            for e in events
            if e["kind"] == "item"
            and e["role"] == "assistant"
            and e["metrics"].get("started_speaking_at", 0) * 1000 > end
        ),
        None,
    )
    if user_item is None or reply is None:
        return None
    um, am = user_item["metrics"], reply["metrics"]
    stopped = um["stopped_speaking_at"] * 1000
    started = am["started_speaking_at"] * 1000
    stt = um.get("transcription_delay", 0.0) * 1000
    eot = um.get("end_of_turn_delay", 0.0) * 1000
    ttft = am.get("llm_node_ttft", 0.0) * 1000
    ttfb = am.get("tts_node_ttfb", 0.0) * 1000
    e2e = started - stopped
    parts = {
        "capture_vad": stopped - end,
        "stt": stt,
        "endpointing": eot - stt,
        "llm_ttft": ttft,
        "tts_ttfb": ttfb,
        "agent_other": e2e - eot - ttft - ttfb,
        "transport_out": audio - started,
    }
    http = [e for e in events if e["kind"] == "http" and end < e["wall_ms"] <= audio]
    server: dict[str, float | None] = {}
    for client in ("stt", "llm", "tts"):
        hits = [e for e in http if e["client"] == client and e["processing_ms"] is not None]
        pick = hits[0] if client == "tts" else (hits[-1] if hits else None)
        if client == "tts" and hits:
            pick = hits[0]
        server[client] = pick["processing_ms"] if pick else None
    return {
        "total": audio - end,
        "parts": {k: round(v, 1) for k, v in parts.items()},
        "agent_e2e": round(e2e, 1),
        "standin_ms": server,
    }


def analyse(sessions: list[dict[str, Any]], events_dir: Path, rng: random.Random) -> dict[str, Any]:
    events = load_events(events_dir)
    per_agent: dict[str, list[dict[str, Any]]] = {a: [] for a in AGENTS}
    # Per session, the latencies of its successful turns (the unit the intervals resample).
    by_session: dict[str, list[list[float]]] = {a: [] for a in AGENTS}
    failures: dict[str, int] = dict.fromkeys(AGENTS, 0)
    planned: dict[str, int] = dict.fromkeys(AGENTS, 0)
    for session in sessions:
        agent = session["agent"]
        planned[agent] += session["planned_turns"]
        failures[agent] += session["planned_turns"] - len(session["turns"])
        latencies: list[float] = []
        for turn in session["turns"]:
            if not turn["ok"] or turn["latency_ms"] is None:
                failures[agent] += 1
                continue
            split = breakdown(turn, events.get(session["room"], []))
            row = {
                "total": turn["latency_ms"],
                "split": split,
                "answer": turn["answer"],
                "first_user_text_ms": turn["first_user_text_after_speech_start_ms"],
                "user_final_ms": turn["user_final_after_speech_end_ms"],
            }
            per_agent[agent].append(row)
            latencies.append(turn["latency_ms"])
        by_session[agent].append(latencies)
    stats: dict[str, Any] = {}
    for agent, rows in per_agent.items():
        split_rows = [r["split"] for r in rows if r["split"]]
        stats[agent] = {
            "planned_turns": planned[agent],
            "turns": len(rows),
            "failed_turns": failures[agent],
            "with_breakdown": len(split_rows),
            "total": summarize([r["total"] for r in rows]),
            "total_p50_ci": session_bootstrap(by_session[agent], None, rng, q=50),
            "total_p95_ci": session_bootstrap(by_session[agent], None, rng, q=95),
            "first_user_text_after_speech_start": summarize(
                [r["first_user_text_ms"] for r in rows if r["first_user_text_ms"] is not None]
            ),
            "user_final_after_speech_end": summarize(
                [r["user_final_ms"] for r in rows if r["user_final_ms"] is not None]
            ),
            "agent_e2e": summarize([s["agent_e2e"] for s in split_rows]),
            "parts": {c: summarize([s["parts"][c] for s in split_rows]) for c in COMPONENTS},
            "standin_ms": {
                c: summarize([s["standin_ms"][c] for s in split_rows if s["standin_ms"][c]])
                for c in ("stt", "llm", "tts")
            },
        }
    cost: dict[str, Any] = {
        # Sessions resampled: the interval is honest about turns sharing a session.
        "total": session_bootstrap(by_session["ours"], by_session["baseline"], rng, q=50),
    }
    for c in COMPONENTS:
        cost[c] = bootstrap_median_diff(
            [r["split"]["parts"][c] for r in per_agent["ours"] if r["split"]],
            [r["split"]["parts"][c] for r in per_agent["baseline"] if r["split"]],
            rng,
        )
    return {"per_agent": per_agent, "stats": stats, "cost_ours_minus_baseline": cost}


def plot(analysis: dict[str, Any], path: Path, title: str) -> None:
    stats = analysis["stats"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    agents = list(AGENTS)
    colors = [plt.get_cmap("tab10")(i) for i in range(10)]
    for y, agent in enumerate(agents):
        left = 0.0
        for i, c in enumerate(COMPONENTS):
            width = stats[agent]["parts"][c].get("p50") or 0.0
            ax1.barh(y, width, left=left, color=colors[i], label=LABELS[c] if y == 0 else None)
            if width > 60:
                ax1.text(left + width / 2, y, f"{width:.0f}", ha="center", va="center", fontsize=7)
            left += width
        p50 = stats[agent]["total"].get("p50")
        if p50 is not None:
            ax1.plot([p50], [y], "k|", markersize=22)
            ax1.text(p50 + 20, y + 0.3, f"measured p50 {p50:.0f} ms", fontsize=8)
    ax1.set_yticks(range(len(agents)), agents)
    ax1.set_xlabel("ms (median of each component, stacked)", labelpad=2)
    ax1.set_title("End of user speech -> first agent audio at the user")
    ax1.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4)
    data = [[r["total"] for r in analysis["per_agent"][a]] or [0.0] for a in agents]
    ax2.boxplot(data, tick_labels=agents, showfliers=True)
    for i, values in enumerate(data, start=1):
        ax2.scatter([i + random.uniform(-0.08, 0.08) for _ in values], values, s=8, alpha=0.5)
    ax2.set_ylabel("turn latency, ms")
    ax2.set_title("All turns")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


async def run(
    stacks: dict[str, Stack], sessions: int, turns: int, rng: random.Random
) -> list[dict[str, Any]]:
    results = []
    for i in range(sessions):
        for which in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
            logger.info("session %d/%d on %s", i + 1, sessions, which)
            results.append(await run_session(stacks[which], which, turns, rng))
            await asyncio.sleep(1.0)
    return results


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0] if __doc__ else NAME)
    parser.add_argument("--sessions", type=int, default=4, help="sessions per agent")
    parser.add_argument("--turns", type=int, default=5, help="voice turns per session")
    args = parser.parse_args()
    setup_logging(args.verbose)
    rng = random.Random(args.seed)
    result = ResultFile(
        NAME,
        {"sessions_per_agent": args.sessions, "turns_per_session": args.turns},
        results_dir=args.results_dir,
    )
    events_dir = CACHE_DIR / "bench-events" / NAME
    shutil.rmtree(events_dir, ignore_errors=True)
    events_dir.mkdir(parents=True)
    # One livekit-server per agent: with two agent names registered on one v1.13.5 server in
    # local mode, jobs for one of them were refused ("no servers available"); separate servers
    # also keep one agent's media traffic out of the other's SFU.
    stack = Stack(StackConfig(services=("standin",)))
    baseline_stack = Stack(StackConfig(services=(), env={"OPENAI_BASE_URL": stack.standin_url}))
    stacks = {"ours": stack, "baseline": baseline_stack}
    services = {
        which: bench_agent_service(stacks[which], which, agent_name=name, events_dir=events_dir)
        for which, name in AGENTS.items()
    }
    with stack, baseline_stack:
        try:
            for service in services.values():
                service.start(timeout=120)
            sessions = asyncio.run(run(stacks, args.sessions, args.turns, rng))
        finally:
            for service in services.values():
                service.stop()
    analysis = analyse(sessions, events_dir, rng)
    result.data = {"sessions": sessions, **analysis}
    stats = analysis["stats"]
    cost = analysis["cost_ours_minus_baseline"]
    for agent in AGENTS:
        s = stats[agent]
        ci50, ci95 = s["total_p50_ci"], s["total_p95_ci"]
        ci = ""
        if ci50 and ci95:
            ci = (
                f"; p50 CI [{ci50['ci95_low']:.0f}, {ci50['ci95_high']:.0f}],"
                f" p95 CI [{ci95['ci95_low']:.0f}, {ci95['ci95_high']:.0f}] (sessions resampled)"
            )
        result.row(
            f"voice turn ({agent})",
            fmt_ms(s["total"], "p50", "p95"),
            note=f"{s['turns']}/{s['planned_turns']} turns ok, {s['failed_turns']} failed{ci}",
        )
        result.row(
            f"  user text at the page ({agent}): first after speech start / final after end",
            fmt_ms(s["first_user_text_after_speech_start"], "p50")
            + " / "
            + fmt_ms(s["user_final_after_speech_end"], "p50"),
        )
    o, b = stats["ours"], stats["baseline"]
    for c in COMPONENTS:
        d = cost[c]
        result.row(
            f"  {LABELS[c]} (p50)",
            fmt_ms(o["parts"][c], "p50"),
            baseline=fmt_ms(b["parts"][c], "p50"),
            note=""
            if d is None
            else f"diff {d['diff']:+.0f} ms [{d['ci95_low']:+.0f}, {d['ci95_high']:+.0f}]",
        )
    d = cost["total"]
    if d is not None:
        result.row(
            "cost of our additions per turn (median diff)",
            f"{d['value']:+.0f} ms",
            note=f"95% CI [{d['ci95_low']:+.0f}, {d['ci95_high']:+.0f}] ms, sessions resampled",
        )
    for c in ("stt", "llm", "tts"):
        result.row(
            f"stand-in X-Processing-Ms {c} (p50)",
            fmt_ms(o["standin_ms"][c], "p50"),
            baseline=fmt_ms(b["standin_ms"][c], "p50"),
        )
    result.finish(lambda path, caption: plot(analysis, path, caption))


if __name__ == "__main__":
    main()

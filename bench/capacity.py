"""Capacity: concurrent voice sessions against one agent worker.

`python -m bench.capacity` (about 7 minutes with the defaults; stops early past the knee and
never starts a step that would cross `--budget` seconds).

One livekit-server, one stand-in, ONE worker (our agent, `AGENT_MAX_JOBS=50`). For each step
N in `--steps`, N simulated users join at once, wait for their greeting, then each speaks
`--turns` FAQ questions (at least `--min-turns` turns per step in total) with random gaps, all
at the same time; then they leave and the worker's job processes wind down before the next step.

Per step: voice turn latency (end of user speech -> first agent audio, at the user) p50/p95 and
failures; CPU of the worker's process tree (worker, job processes, inference process) over the
conversation window, per session, in % of one core; PSS (proportional set size: shared pages
split between processes) of the tree at its peak, per session. The simulated users run in this
process on the same 2 cores and their CPU is reported too: it competes with the worker.

Capacity = the largest N whose p95 stays within 1.5x the single-session p95 with no failed turn.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import psutil

from devstack.stack import Stack, StackConfig
from simuser import Stamp

from .common import (
    QUESTIONS,
    AgentAttributeStates,
    ProcessTreeSampler,
    TurnSample,
    summarize,
    voice_turn,
)
from .harness import int_list, our_agent, running, start_run
from .plotting import plt, save_figure
from .stacks import direct_user

logger = logging.getLogger("bench.capacity")

NAME = "capacity"
LIMIT_FACTOR = 1.5


async def one_user(
    stack: Stack,
    index: int,
    turns: int,
    all_ready: asyncio.Event,
    ready_count: list[int],
    n: int,
    rng: random.Random,
) -> list[TurnSample]:
    await asyncio.sleep(index * 0.15)  # a burst, not one instant: as users arriving together
    user = direct_user(stack, stack.config.agent_name)
    states = AgentAttributeStates(user)
    samples: list[TurnSample] = []
    try:
        async with user:
            await user.publish_microphone()
            await user.wait_for_agent(120)
            await states.wait_greeting_done(120)
            ready_count[0] += 1
            if ready_count[0] >= n:
                all_ready.set()
            await asyncio.wait_for(all_ready.wait(), timeout=180)
            await asyncio.sleep(rng.uniform(0.0, 3.0))
            for t in range(turns):
                question = QUESTIONS[(index + t) % len(QUESTIONS)]
                samples.append(await voice_turn(user, states, question, timeout=30))
                await asyncio.sleep(rng.uniform(0.5, 2.0))
    except TimeoutError as exc:
        logger.warning("user %d: %s", index, exc)
        ready_count[0] += 1  # never block the others' start
        if ready_count[0] >= n:
            all_ready.set()
    finally:
        states.close()
    missing = turns - len(samples)
    never = Stamp.now()
    samples.extend(
        TurnSample(
            "(not reached)", speech_started=never, speech_ended=never, first_audio=None,
            error="lost",
        )
        for _ in range(missing)
    )  # fmt: skip
    return samples


async def wait_idle(sampler: ProcessTreeSampler, idle_processes: int, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        sample = await asyncio.to_thread(sampler.sample_now)
        if sample.processes <= idle_processes:
            return
        await asyncio.sleep(1.0)
    logger.warning("worker tree still has extra processes after %.0fs", limit_s)


async def run_step(
    stack: Stack, sampler: ProcessTreeSampler, n: int, turns: int, rng: random.Random
) -> dict[str, Any]:
    all_ready = asyncio.Event()
    ready_count = [0]
    me = psutil.Process()
    gen0 = me.cpu_times()
    t_start = time.monotonic()
    tasks = [
        asyncio.create_task(one_user(stack, i, turns, all_ready, ready_count, n, rng))
        for i in range(n)
    ]
    await all_ready.wait()
    t_ready = time.monotonic()
    s_ready = await asyncio.to_thread(sampler.sample_now)
    results = await asyncio.gather(*tasks)
    s_done = await asyncio.to_thread(sampler.sample_now)
    t_done = time.monotonic()
    gen1 = me.cpu_times()
    window = max(t_done - t_ready, 1e-6)
    peak = max(sampler.window(t_start, t_done), key=lambda s: s.pss, default=s_done)
    samples = [s for user in results for s in user]
    latencies = [s.latency_ms for s in samples if s.latency_ms is not None]
    failed = sum(1 for s in samples if s.latency_ms is None)
    tree_cpu = (s_done.cpu_s - s_ready.cpu_s) / window
    return {
        "sessions": n,
        "turns_per_session": turns,
        "turns": len(samples),
        "failed_turns": failed,
        "latency_ms": summarize(latencies),
        "join_to_all_ready_s": round(t_ready - t_start, 1),
        "conversation_window_s": round(window, 1),
        "worker_cpu_cores": round(tree_cpu, 3),
        "worker_cpu_pct_per_session": round(100 * tree_cpu / n, 1),
        "worker_peak_pss_mib": round(peak.pss / 2**20, 1),
        "worker_peak_rss_mib": round(peak.rss / 2**20, 1),
        "worker_processes_peak": peak.processes,
        "generator_cpu_cores": round(
            ((gen1.user + gen1.system) - (gen0.user + gen0.system)) / (t_done - t_start), 3
        ),
        "raw_turns": [s.to_dict() for s in samples],
    }


async def run(
    stack: Stack, pid: int, steps: list[int], args: Any, rng: random.Random
) -> dict[str, Any]:
    sampler = ProcessTreeSampler(pid, interval=1.0)
    await asyncio.sleep(3.0)  # the idle pool settles
    idle = await asyncio.to_thread(sampler.sample_now)
    sampler.start()
    out: dict[str, Any] = {
        "idle_worker": {
            "pss_mib": round(idle.pss / 2**20, 1),
            "rss_mib": round(idle.rss / 2**20, 1),
            "processes": idle.processes,
        },
        "steps": [],
    }
    began = time.monotonic()
    last_duration = 0.0
    try:
        for n in steps:
            turns = max(args.turns, math.ceil(args.min_turns / n))
            elapsed = time.monotonic() - began
            if out["steps"] and elapsed + last_duration * 1.5 > args.budget:
                logger.info("step %d skipped: would exceed the %ss budget", n, args.budget)
                out["skipped"] = steps[steps.index(n) :]
                break
            logger.info("step: %d concurrent sessions, %d turns each", n, turns)
            t0 = time.monotonic()
            step = await run_step(stack, sampler, n, turns, rng)
            await wait_idle(sampler, idle.processes, limit_s=60)
            last_duration = time.monotonic() - t0
            step["step_duration_s"] = round(last_duration, 1)
            out["steps"].append(step)
            lat = step["latency_ms"]
            logger.info(
                "N=%d: p50 %s p95 %s ms, %d/%d failed, worker %.0f%% CPU/session, "
                "%.0f MiB PSS peak, generator %.2f cores",
                n,
                lat.get("p50"),
                lat.get("p95"),
                step["failed_turns"],
                step["turns"],
                step["worker_cpu_pct_per_session"],
                step["worker_peak_pss_mib"],
                step["generator_cpu_cores"],
            )
            base = out["steps"][0]["latency_ms"].get("p95")
            p95 = lat.get("p95")
            too_slow = base is not None and p95 is not None and p95 > 3 * base
            if too_slow or step["failed_turns"] > step["turns"] / 2:
                logger.info("past the knee at N=%d: stopping", n)
                out["skipped"] = steps[steps.index(n) + 1 :]
                break
    finally:
        await sampler.stop()
    return out


def capacity(steps: list[dict[str, Any]]) -> int | None:
    if not steps or steps[0]["latency_ms"].get("p95") is None:
        return None
    limit = LIMIT_FACTOR * steps[0]["latency_ms"]["p95"]
    best = None
    for step in steps:
        p95 = step["latency_ms"].get("p95")
        if p95 is not None and p95 <= limit and step["failed_turns"] == 0:
            best = step["sessions"]
    return best


def _marginal_pss(step: dict[str, Any], idle_mib: float) -> float:
    """Peak PSS of the tree above the idle worker's, per session."""
    return round((float(step["worker_peak_pss_mib"]) - idle_mib) / int(step["sessions"]), 1)


def plot(data: dict[str, Any], cap: int | None, path: Path, title: str) -> None:
    steps = data["steps"]
    ns = [s["sessions"] for s in steps]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    ax1.plot(ns, [s["latency_ms"].get("p95") for s in steps], "o-", label="turn latency p95")
    ax1.plot(ns, [s["latency_ms"].get("p50") for s in steps], "s--", label="turn latency p50")
    if steps and steps[0]["latency_ms"].get("p95"):
        ax1.axhline(
            LIMIT_FACTOR * steps[0]["latency_ms"]["p95"],
            color="red",
            linestyle=":",
            label=f"{LIMIT_FACTOR}x single-session p95",
        )
    for s in steps:
        if s["failed_turns"]:
            ax1.annotate(
                f"{s['failed_turns']} failed",
                (s["sessions"], s["latency_ms"].get("p95") or 0),
                fontsize=7,
            )
    if cap is not None:
        ax1.axvline(cap, color="green", alpha=0.4, label=f"capacity: {cap} sessions")
    ax1.set_xlabel("concurrent sessions on one worker")
    ax1.set_ylabel("end of speech -> first agent audio, ms")
    ax1.set_title("Turn latency vs load (the knee)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    ax2.plot(ns, [s["worker_cpu_pct_per_session"] for s in steps], "o-", label="CPU % / session")
    ax2.plot(ns, [100 * s["worker_cpu_cores"] for s in steps], "o:", label="worker CPU % total")
    ax2.plot(ns, [100 * s["generator_cpu_cores"] for s in steps], "x:", label="sim users CPU %")
    ax2.set_xlabel("concurrent sessions")
    ax2.set_ylabel("% of one core")
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    idle = data["idle_worker"]["pss_mib"]
    ax3.plot(
        ns,
        [_marginal_pss(s, idle) for s in steps],
        "d-",
        color="purple",
        label="PSS MiB / session (above idle worker)",
    )
    ax3.set_ylabel("MiB per session (peak PSS above idle)")
    lines = ax2.get_legend_handles_labels()
    more = ax3.get_legend_handles_labels()
    ax2.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper left")
    ax2.set_title("Worker process tree cost")
    save_figure(fig, path, title)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--steps", type=int_list, default="1,5,10,20,30", help="concurrent sessions per step"
    )
    parser.add_argument("--turns", type=int, default=3, help="voice turns per session")
    parser.add_argument("--min-turns", type=int, default=12, help="at least this many per step")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all steps")


def main() -> None:
    bench = start_run(
        NAME,
        "concurrent sessions against one worker",
        _options,
        lambda args: {
            "steps": args.steps,
            "turns_per_session": args.turns,
            "min_turns_per_step": args.min_turns,
            "budget_s": args.budget,
            "limit_factor": LIMIT_FACTOR,
            "agent_max_jobs": 50,
        },
    )
    args, result = bench.args, bench.result
    stack = Stack(StackConfig(services=("standin",)))
    service = our_agent(stack, NAME)
    with running([stack], [service]):
        assert service.pid is not None
        data = asyncio.run(run(stack, service.pid, args.steps, args, bench.rng))
    cap = capacity(data["steps"])
    data["capacity_sessions"] = cap
    result.data = data
    idle = data["idle_worker"]["pss_mib"]
    for s in data["steps"]:
        result.row(
            f"capacity N={s['sessions']}",
            f"p95 {s['latency_ms'].get('p95')} ms",
            note=f"p50 {s['latency_ms'].get('p50')} ms; {s['failed_turns']}/{s['turns']} failed; "
            f"{s['worker_cpu_pct_per_session']}% CPU/session; "
            f"{_marginal_pss(s, idle):.0f} MiB PSS/session above the idle worker",
        )
    result.row(
        f"capacity (p95 within {LIMIT_FACTOR}x of 1 session, no failures)",
        f"{cap} sessions" if cap is not None else "n/a",
        note=f"idle worker {idle} MiB PSS (worker, 1 idle job process, inference process)",
    )
    result.finish(lambda path, caption: plot(data, cap, path, caption))


if __name__ == "__main__":
    main()

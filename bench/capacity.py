"""Capacity: what one agent worker costs per voice session, and how many it holds.

`python -m bench.capacity` (`make bench-capacity`; about 10-15 minutes with the defaults on
2 cores: it stops at the first step with a failed turn and never starts a step that would cross
`--budget` seconds).

One livekit-server, one stand-in and ONE agent worker (`python -m agent start`, the production
worker, `AGENT_MAX_JOBS` high enough never to refuse). For N = 1, 2, 3, 4, 6, 8, 10, ... N
simulated users join together, each hears the greeting, then (once all are greeted) each asks
`--turns` FAQ questions by voice with pauses between them (`bench.conversation`: a turn counts
only when the whole answer arrived in time and was the FAQ's; failures have a cause).

Measured per step:
- turn latency (end of user speech -> first agent audio) p50/p95 with 95 % intervals that
  resample sessions, and the time to the complete answer (agent back to listening);
- failed turns by cause;
- the agent worker's process tree (worker, forkserver, job processes, inference process if any:
  everything under the worker's pid) in CPU core-seconds per session-minute over the
  conversation window (all sessions talking), the same as cores per active session, the cost
  of joining (job start + greeting) per session, and PSS per session above the idle worker
  (peak over the step, and the median over the conversation window: "steady");
- separately, the CPU of the stand-in (recogniser, synthesiser, its espeak-ng/sox children),
  livekit-server and this process (the simulated users): load on the same cores that is not
  the worker's. The users play pre-rendered audio and the stand-in caches its syntheses and uses
  pocketsphinx (`STANDIN_RECOGNISER=pocketsphinx`), the cheapest recogniser it has.

Knee = the largest N with no failed turn and p95 within 1.5x of N = 1's.

`--profile-at N` instead runs the one step N with py-spy recording the worker tree through the
conversation window and writes `capacity-profile-N.txt` (collapsed stacks) and a summary
(ours vs the framework) into the result file `capacity-profile.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from devstack.stack import Stack, StackConfig

from .common import FAQS, session_bootstrap, summarize
from .conversation import (
    CAUSES,
    ConversationPlan,
    Phrasebook,
    SessionResult,
    StartBarrier,
    run_conversation,
)
from .harness import int_list, start_run
from .plotting import plt, save_figure
from .proctree import TreeMeter, TreeReading, TreeSampler
from .pyspy import Recording
from .pyspy import summarize as summarize_profile
from .stacks import direct_user

logger = logging.getLogger("bench.capacity")

NAME = "capacity"
LIMIT_FACTOR = 1.5
DEFAULT_STEPS = "1,2,3,4,6,8,10,12,16,20,24,32"
MAX_JOBS = 100
MIB = 2**20
# Stand-in settings for the benchmark: the cheapest recogniser, repeated syntheses replayed.
STANDIN_ENV = {"STANDIN_RECOGNISER": "pocketsphinx", "STANDIN_TTS_CACHE_ENTRIES": "64"}


def _env_pairs(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--worker-env wants KEY=VALUE, got {item!r}")
        out[key] = value
    return out


class Meters:
    """The trees measured: the worker (CPU and PSS), the stand-in, livekit-server and this
    process (CPU only)."""

    def __init__(self, stack: Stack, interval: float) -> None:
        worker_pid = stack.services["agent"].pid
        standin_pid = stack.services["standin"].pid
        livekit_pid = stack.livekit.pid
        if worker_pid is None or standin_pid is None or livekit_pid is None:
            raise RuntimeError("the stack is not running")
        self.worker = TreeMeter(worker_pid, "worker", memory=True)
        self.sampler = TreeSampler(
            [
                self.worker,
                TreeMeter(standin_pid, "standin", memory=False),
                # A Go binary and this process: nothing of theirs runs in child processes
                # (reaped children still count through the root's children times).
                TreeMeter(livekit_pid, "livekit_server", memory=False, tree=False),
                TreeMeter(psutil.Process().pid, "bench_users", memory=False, tree=False),
            ],
            interval=interval,
        )


def _cpu(a: dict[str, TreeReading], b: dict[str, TreeReading], name: str) -> float:
    return max(0.0, b[name].cpu_s - a[name].cpu_s)


def _roles(a: TreeReading, b: TreeReading) -> dict[str, float]:
    """CPU seconds between two readings by role. Job processes that ended in between are
    counted (whole) through their parent's children times, so live and ended ones are summed:
    split apart, the live ones' share would go negative."""

    def split(r: TreeReading) -> dict[str, float]:
        out = dict(r.cpu_by_role)
        out["job_processes"] = out.pop("job_process", 0.0) + out.pop("exited_children", 0.0)
        return out

    sa, sb = split(a), split(b)
    return {k: round(sb.get(k, 0.0) - sa.get(k, 0.0), 2) for k in sorted(set(sa) | set(sb))}


async def wait_idle(meters: Meters, idle_jobs: int, limit_s: float) -> None:
    """The job processes of the last step gone (as many as the idle worker had), or `limit_s`.
    Counted by role: the forkserver stays once started, even with no idle process."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(meters.worker.count, "job_process") <= idle_jobs:
            return
        await asyncio.sleep(1.0)
    logger.warning("worker tree still has job processes after %.0fs", limit_s)


async def run_step(
    stack: Stack,
    meters: Meters,
    book: Phrasebook,
    n: int,
    plan: ConversationPlan,
    rng: random.Random,
    idle_jobs: int,
    profile: Recording | None = None,
) -> dict[str, Any]:
    sampler = meters.sampler
    barrier = StartBarrier(n)

    async def user(i: int) -> SessionResult:
        await asyncio.sleep(i * 0.2)  # users arriving together, not in one instant
        sim = direct_user(stack, stack.config.agent_name, book.faqs)
        return await run_conversation(sim, i, book, plan, barrier, random.Random(rng.random()))

    r_start = await sampler.snapshot()
    tasks = [asyncio.create_task(user(i)) for i in range(n)]
    await barrier.released.wait()
    if profile is not None:
        await profile.start()
    r_ready = await sampler.snapshot()
    sessions = await asyncio.gather(*tasks)
    r_done = await sampler.snapshot()
    if profile is not None:
        await profile.stop()
    # The worker's CPU is read again once the step's job processes are gone and waited for:
    # a job process exiting at the end of the window is not readable, and its time shows up
    # (whole) in the forkserver's children times only once reaped. Its shutdown work is part
    # of a session's cost anyway.
    await wait_idle(meters, idle_jobs, limit_s=60)
    r_settled = await sampler.snapshot()
    t_start, t_ready, t_done = (r["worker"].at for r in (r_start, r_ready, r_done))
    window = max(t_done - t_ready, 1e-6)
    session_s = sum(s.active_s for s in sessions) or window * n
    session_min = session_s / 60.0

    turns = [t for s in sessions for t in s.turns]
    causes = Counter(t.cause for t in turns if t.cause is not None)
    per_session = [[t.latency_ms for t in s.turns if t.ok and t.latency_ms] for s in sessions]
    latencies = [v for s in per_session for v in s]
    complete = [t.complete_ms for t in turns if t.ok and t.complete_ms is not None]
    ci_rng = random.Random(rng.random())

    worker_cpu = _cpu(r_ready, r_settled, "worker")
    conv = sampler.window("worker", t_ready, t_done)
    step = sampler.window("worker", t_start, t_done)
    peak = max((r.pss for r in step), default=r_done["worker"].pss)
    steady = statistics.median([r.pss for r in conv]) if conv else r_done["worker"].pss
    others = {
        name: {
            "cpu_cores": round(_cpu(r_ready, r_done, name) / window, 3),
            "core_s_per_session_min": round(_cpu(r_ready, r_done, name) / session_min, 2),
        }
        for name in ("standin", "livekit_server", "bench_users")
    }
    return {
        "sessions": n,
        "turns_per_session": plan.turns,
        "turns": len(turns),
        "failed_turns": sum(causes.values()),
        "failed_by_cause": {c: causes.get(c, 0) for c in CAUSES if causes.get(c)},
        "latency_ms": summarize(latencies),
        "latency_p50_ci": session_bootstrap(per_session, None, ci_rng, q=50),
        "latency_p95_ci": session_bootstrap(per_session, None, ci_rng, q=95),
        "complete_answer_ms": summarize(complete),
        "join_window_s": round(t_ready - t_start, 1),
        "conversation_window_s": round(window, 1),
        "session_minutes": round(session_min, 2),
        "worker": {
            "core_s_per_session_min": round(worker_cpu / session_min, 2),
            "cores_per_session": round(worker_cpu / session_s, 4),
            # Per turn too: a loaded machine stretches turns (more minutes, same work), which
            # lowers the per-minute figure; the per-turn one does not move with it.
            "core_s_per_turn": round(worker_cpu / max(len(turns), 1), 2),
            "cores_total": round(worker_cpu / window, 3),
            "join_core_s_per_session": round(_cpu(r_start, r_ready, "worker") / n, 2),
            "cpu_s_by_role": _roles(r_ready["worker"], r_settled["worker"]),
            "pss_peak_mib": round(peak / MIB, 1),
            "pss_steady_mib": round(steady / MIB, 1),
            "processes_peak": max((r.processes for r in step), default=0),
        },
        "others": others,
        "raw_sessions": [
            {"active_s": round(s.active_s, 1), "turns": [t.to_dict() for t in s.turns]}
            for s in sessions
        ],
    }


def _per_session_pss(step: dict[str, Any], idle_mib: float, key: str) -> float:
    return round((float(step["worker"][key]) - idle_mib) / int(step["sessions"]), 1)


def _log_step(step: dict[str, Any], idle_mib: float) -> None:
    lat, w = step["latency_ms"], step["worker"]
    logger.info(
        "N=%d: p50 %s p95 %s ms; %d/%d failed %s; worker %.2f core-s/session-min "
        "(%.3f cores/session, %.2f core-s/turn), PSS/session peak %.0f steady %.0f MiB; "
        "stand-in %.2f, "
        "livekit-server %.2f, users %.2f cores",
        step["sessions"], lat.get("p50"), lat.get("p95"), step["failed_turns"], step["turns"],
        step["failed_by_cause"] or "", w["core_s_per_session_min"], w["cores_per_session"],
        w["core_s_per_turn"],
        _per_session_pss(step, idle_mib, "pss_peak_mib"),
        _per_session_pss(step, idle_mib, "pss_steady_mib"),
        step["others"]["standin"]["cpu_cores"], step["others"]["livekit_server"]["cpu_cores"],
        step["others"]["bench_users"]["cpu_cores"],
    )  # fmt: skip


async def _idle(meters: Meters, seconds: float) -> dict[str, Any]:
    """The idle worker: PSS, processes and CPU over `seconds` with no session."""
    a = await meters.sampler.snapshot()
    await asyncio.sleep(seconds)
    b = await meters.sampler.snapshot()
    w = b["worker"]
    return {
        "pss_mib": round(w.pss / MIB, 1),
        "processes": w.processes,
        "job_processes": await asyncio.to_thread(meters.worker.count, "job_process"),
        "cpu_cores": round(_cpu(a, b, "worker") / max(w.at - a["worker"].at, 1e-6), 4),
        "members": meters.worker.describe(),
    }


async def run(stack: Stack, args: Any, rng: random.Random) -> dict[str, Any]:
    book = await Phrasebook(FAQS).load()
    plan = ConversationPlan(
        turns=args.turns,
        gap_s=(args.gap_min, args.gap_max),
        join_timeout=args.join_timeout,
        greeting_timeout=args.turn_timeout,
        turn_timeout=args.turn_timeout,
    )
    meters = Meters(stack, interval=args.sample_interval)
    await asyncio.sleep(3.0)  # the idle process pool settles
    idle = await _idle(meters, 10.0)
    meters.sampler.start()
    out: dict[str, Any] = {"idle_worker": idle, "steps": []}
    began = time.monotonic()
    last = 0.0
    steps = [args.profile_at] if args.profile_at else args.steps
    try:
        for i, n in enumerate(steps):
            elapsed = time.monotonic() - began
            if out["steps"] and elapsed + last * 1.25 > args.budget:
                logger.info("N=%d and on skipped: would exceed the %.0f s budget", n, args.budget)
                out["skipped"] = steps[i:]
                break
            logger.info("step: %d concurrent sessions, %d turns each", n, plan.turns)
            profile = None
            if args.profile_at:
                profile = Recording(
                    meters.worker.root.pid,
                    args.results_dir / f"{NAME}-profile-{n}.txt",
                    rate=args.profile_rate,
                )
            t0 = time.monotonic()
            step = await run_step(stack, meters, book, n, plan, rng, idle["job_processes"], profile)
            last = time.monotonic() - t0
            step["step_duration_s"] = round(last, 1)
            out["steps"].append(step)
            _log_step(step, idle["pss_mib"])
            if profile is not None:
                out["profile"] = {"file": profile.out.name, **summarize_profile(profile.out)}
            if step["failed_turns"]:
                logger.info("turns failed at N=%d: stopping here", n)
                out["skipped"] = steps[i + 1 :]
                break
    finally:
        await meters.sampler.stop()
    return out


def knee(steps: list[dict[str, Any]]) -> int | None:
    """The largest N with no failed turn and p95 within LIMIT_FACTOR x the first step's."""
    if not steps or steps[0]["latency_ms"].get("p95") is None:
        return None
    limit = LIMIT_FACTOR * steps[0]["latency_ms"]["p95"]
    best = None
    for step in steps:
        p95 = step["latency_ms"].get("p95")
        if p95 is not None and p95 <= limit and step["failed_turns"] == 0:
            best = step["sessions"]
    return best


def plot(data: dict[str, Any], cap: int | None, path: Path, title: str) -> None:
    steps = data["steps"]
    idle = data["idle_worker"]["pss_mib"]
    ns = [s["sessions"] for s in steps]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(16, 4.5))
    ax1.plot(ns, [s["latency_ms"].get("p95") for s in steps], "o-", label="p95")
    ax1.plot(ns, [s["latency_ms"].get("p50") for s in steps], "s--", label="p50")
    if steps and steps[0]["latency_ms"].get("p95"):
        ax1.axhline(
            LIMIT_FACTOR * steps[0]["latency_ms"]["p95"], color="red", linestyle=":",
            label=f"{LIMIT_FACTOR}x p95 at N={ns[0]}",
        )  # fmt: skip
    for s in steps:
        if s["failed_turns"]:
            causes = ", ".join(f"{v} {k}" for k, v in s["failed_by_cause"].items())
            ax1.annotate(causes, (s["sessions"], s["latency_ms"].get("p95") or 0), fontsize=7)
    if cap is not None:
        ax1.axvline(cap, color="green", alpha=0.4, label=f"knee: {cap} sessions")
    ax1.set_xlabel("concurrent sessions on one worker")
    ax1.set_ylabel("end of speech -> first agent audio, ms")
    ax1.set_title("Turn latency vs sessions")
    ax1.legend(fontsize=7)
    ax2.plot(ns, [s["worker"]["cores_per_session"] for s in steps], "o-", label="agent worker")
    for name, style in (("standin", "x:"), ("livekit_server", "d:"), ("bench_users", "v:")):
        ax2.plot(
            ns,
            [s["others"][name]["core_s_per_session_min"] / 60.0 for s in steps],
            style,
            label=name.replace("_", " "),
        )
    ax2.axhline(0.08, color="red", linestyle=":", label="target 0.08")
    ax2.set_xlabel("concurrent sessions")
    ax2.set_ylabel("cores per active session")
    ax2.set_title("CPU per session (conversation window)")
    ax2.legend(fontsize=7)
    ax3.plot(ns, [_per_session_pss(s, idle, "pss_peak_mib") for s in steps], "o-", label="peak")
    ax3.plot(
        ns, [_per_session_pss(s, idle, "pss_steady_mib") for s in steps], "s--", label="steady"
    )
    ax3.axhline(120 / 1.048576, color="red", linestyle=":", label="target 120 MB")
    ax3.set_xlabel("concurrent sessions")
    ax3.set_ylabel("MiB per session above the idle worker")
    ax3.set_title(f"Worker tree PSS per session (idle worker {idle:.0f} MiB)")
    ax3.legend(fontsize=7)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    save_figure(fig, path, title)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int_list, default=DEFAULT_STEPS, help="sessions per step")
    parser.add_argument("--turns", type=int, default=4, help="FAQ questions per session")
    parser.add_argument("--gap-min", type=float, default=1.0, help="pause between turns, s")
    parser.add_argument("--gap-max", type=float, default=3.0)
    parser.add_argument(
        "--turn-timeout", type=float, default=20.0,
        help="seconds from the end of speech for the whole answer (and for the greeting)",
    )  # fmt: skip
    parser.add_argument("--join-timeout", type=float, default=60.0)
    parser.add_argument("--budget", type=float, default=780.0, help="seconds for all steps")
    parser.add_argument("--sample-interval", type=float, default=2.0, help="tree readings, s")
    parser.add_argument(
        "--worker-env", action="append", default=[], metavar="KEY=VALUE",
        help="extra setting for the agent worker (repeatable), e.g. AGENT_NUM_IDLE_PROCESSES=0",
    )  # fmt: skip
    parser.add_argument(
        "--profile-at", type=int, default=None, metavar="N",
        help="run only step N with py-spy on the worker tree (result: capacity-profile.json)",
    )  # fmt: skip
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples/s")


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "steps": [args.profile_at] if args.profile_at else args.steps,
        "turns_per_session": args.turns,
        "gap_s": [args.gap_min, args.gap_max],
        "turn_timeout_s": args.turn_timeout,
        "join_timeout_s": args.join_timeout,
        "budget_s": args.budget,
        "limit_factor": LIMIT_FACTOR,
        "agent_max_jobs": MAX_JOBS,
        "worker_env": _env_pairs(args.worker_env),
        "standin_env": STANDIN_ENV,
        "profile_at": args.profile_at,
        "profile_rate": args.profile_rate if args.profile_at else None,
    }


def _rows(result: Any, data: dict[str, Any], cap: int | None) -> None:
    idle = data["idle_worker"]["pss_mib"]
    for s in data["steps"]:
        w, o = s["worker"], s["others"]
        causes = ", ".join(f"{v} {k}" for k, v in s["failed_by_cause"].items()) or "none"
        result.row(
            f"capacity N={s['sessions']}",
            f"p95 {s['latency_ms'].get('p95')} ms",
            note=f"p50 {s['latency_ms'].get('p50')} ms; failed {s['failed_turns']}/{s['turns']}"
            f" ({causes}); worker {w['core_s_per_session_min']} core-s/session-min"
            f" ({w['cores_per_session']} cores/session, {w['core_s_per_turn']} core-s/turn);"
            f" PSS/session"
            f" {_per_session_pss(s, idle, 'pss_peak_mib'):.0f} peak,"
            f" {_per_session_pss(s, idle, 'pss_steady_mib'):.0f} steady MiB; not the worker:"
            f" stand-in {o['standin']['cpu_cores']}, livekit-server"
            f" {o['livekit_server']['cpu_cores']}, users {o['bench_users']['cpu_cores']} cores",
        )
    result.row(
        f"knee (no failed turn, p95 within {LIMIT_FACTOR}x of N=1)",
        f"{cap} sessions" if cap is not None else "n/a",
        note=f"idle worker {idle} MiB PSS, {data['idle_worker']['processes']} processes, "
        f"{data['idle_worker']['cpu_cores']} cores",
    )
    if "profile" in data:
        p = data["profile"]
        result.row(
            f"py-spy profile at N={data['steps'][0]['sessions'] if data['steps'] else '?'}",
            f"ours {p['ours_inclusive_pct']} % of worker-tree samples",
            note="; ".join(f"{k} {v}%" for k, v in list(p["buckets_pct"].items())[:6]),
        )


def main(argv: list[str] | None = None) -> None:
    bench = start_run(
        NAME, "cost per voice session of one agent worker", _options, _parameters, argv
    )
    args, result = bench.args, bench.result
    if args.profile_at:
        result.name = f"{NAME}-profile"
    env = {
        "AGENT_MAX_JOBS": str(MAX_JOBS),
        **STANDIN_ENV,
        **_env_pairs(args.worker_env),
    }
    stack = Stack(StackConfig(services=("standin", "agent"), env=env))
    with stack:
        data = asyncio.run(run(stack, args, bench.rng))
    data["standin_recogniser"] = _recogniser_used()
    cap = knee(data["steps"])
    data["knee_sessions"] = cap
    result.data = data
    _rows(result, data, cap)
    result.finish(lambda path, caption: plot(data, cap, path, caption))


def _recogniser_used() -> str:
    """Which recogniser the stand-in ran: the setting, if this stand-in has it."""
    from standin.settings import Settings

    if "recogniser" in Settings.model_fields:
        return STANDIN_ENV["STANDIN_RECOGNISER"]
    return "pocketsphinx (this stand-in has no STANDIN_RECOGNISER setting: its only recogniser)"


if __name__ == "__main__":
    main()

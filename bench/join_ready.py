"""Join -> ready: token request to the first `listening` state RPC at the user.

`python -m bench.join_ready` (about 3.5 minutes with the defaults).

Two stacks side by side in the same run, each livekit-server + stand-in + token server + our agent
worker: one with `AGENT_NUM_IDLE_PROCESSES=0` (a job process is spawned per session), one with
`AGENT_NUM_IDLE_PROCESSES=2` (prewarmed processes wait). Sessions alternate between the stacks,
one at a time, with a pause between them (so the warm pool refills, as it would between users).

Per session, on the simulated user's monotonic clock from the start of `POST /api/token`:
token answered, room connected, agent participant seen, first `listening` RPC received.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from pathlib import Path
from typing import Any

from common.protocol import is_agent_identity
from devstack.stack import Stack
from simuser import SimulatedUser, Stamp

from .common import FAQS, fmt_ms, summarize
from .harness import our_agent, running, start_run, user_stack
from .plotting import plt, save_figure

logger = logging.getLogger("bench.join_ready")

# A hang guard per session (join, greeting, leave); a normal one takes about a second.
SESSION_TIMEOUT_S = 120.0

NAME = "join_ready"
SEGMENTS = ("token", "connect", "agent_join", "ready")


async def one_session(stack: Stack) -> dict[str, Any]:
    started = Stamp.now()
    out: dict[str, Any] = {"ok": False}
    try:
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            return await _measure_session(stack, started, out)
    except (TimeoutError, OSError) as exc:
        out["error"] = repr(exc)
        logger.warning("session failed: %r", exc)
    return out


async def _measure_session(stack: Stack, started: Stamp, out: dict[str, Any]) -> dict[str, Any]:
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    token = Stamp.now()
    async with user:
        assert user.recording.connected is not None
        connected = user.recording.connected
        ready = await user.wait_for_state("listening", timeout=60)
        # The first RPC can be handled before the participant event is: then it is the mark.
        joined = next(
            (p.at for p in user.recording.participants if is_agent_identity(p.identity)),
            ready.received,
        )
        joined = min(joined, ready.received, key=lambda s: s.mono)
    out.update(
        ok=True,
        token_ms=(token.mono - started.mono) * 1e3,
        connect_ms=(connected.mono - started.mono) * 1e3,
        agent_join_ms=(joined.mono - started.mono) * 1e3,
        ready_ms=(ready.received.mono - started.mono) * 1e3,
    )
    return out


async def run(
    stacks: dict[str, Stack], sessions: int, gap: float, rng: random.Random
) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in stacks}
    order = list(stacks)
    for i in range(sessions):
        rng.shuffle(order)
        for name in order:
            result = await one_session(stacks[name])
            results[name].append(result)
            logger.info(
                "%s session %d/%d: ready %s ms",
                name,
                i + 1,
                sessions,
                round(result["ready_ms"]) if result["ok"] else "FAILED",
            )
            await asyncio.sleep(gap)
    return results


def plot(
    stats: dict[str, Any], raw: dict[str, list[dict[str, Any]]], path: Path, title: str
) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(raw)
    for name in names:
        values = sorted(r["ready_ms"] for r in raw[name] if r["ok"])
        if values:
            ax1.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=name)
    ax1.set_xlabel("token request -> first 'listening' RPC, ms")
    ax1.set_ylabel("fraction of sessions")
    ax1.set_title("Join -> ready (CDF)")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8)
    colors = [plt.get_cmap("tab10")(i) for i in range(10)]
    labels = {
        "token": "token",
        "connect": "room connect",
        "agent_join": "agent joins",
        "ready": "first listening",
    }
    for y, name in enumerate(names):
        prev = 0.0
        for i, seg in enumerate(SEGMENTS):
            at = stats[name][seg].get("p50") or prev
            label = labels[seg] if y == 0 else None
            ax2.barh(y, at - prev, left=prev, color=colors[i], label=label)
            prev = at
    ax2.set_yticks(range(len(names)), names, fontsize=8)
    ax2.set_xlabel("ms since token request (medians)")
    ax2.set_title("Where the time goes")
    ax2.legend(fontsize=7)
    save_figure(fig, path, title)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=30, help="sessions per configuration")
    parser.add_argument("--idle", type=int, default=2, help="AGENT_NUM_IDLE_PROCESSES when on")
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between sessions")


def main() -> None:
    bench = start_run(
        NAME,
        "join -> ready with idle prewarmed processes off and on",
        _options,
        lambda args: {
            "sessions_per_config": args.sessions,
            "idle_on": args.idle,
            "gap_s": args.gap,
        },
    )
    args, result = bench.args, bench.result
    configs = {"idle=0": "0", f"idle={args.idle}": str(args.idle)}
    stacks = {name: user_stack() for name in configs}
    services = {
        name: our_agent(stacks[name], NAME, env={"AGENT_NUM_IDLE_PROCESSES": idle})
        for name, idle in configs.items()
    }
    with running(stacks.values(), services.values()):
        raw = asyncio.run(run(stacks, args.sessions, args.gap, bench.rng))
    stats: dict[str, Any] = {}
    for name, rows in raw.items():
        ok = [r for r in rows if r["ok"]]
        stats[name] = {seg: summarize([r[f"{seg}_ms"] for r in ok]) for seg in SEGMENTS}
        stats[name]["failed"] = len(rows) - len(ok)
        result.row(
            f"join -> ready ({name})",
            fmt_ms(stats[name]["ready"], "p50", "p95"),
            note=f"{len(ok)} sessions, {stats[name]['failed']} failed; agent joined at "
            f"p50 {stats[name]['agent_join'].get('p50')} ms",
        )
    result.data = {"stats": stats, "sessions": raw}
    result.finish(lambda path, caption: plot(stats, raw, path, caption))


if __name__ == "__main__":
    main()

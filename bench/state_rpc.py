"""State RPC latency: agent-side state change -> the page's `agent_state_changed` handler runs.

`python -m bench.state_rpc` (about 3.5 minutes with the defaults).

One stack (livekit-server, stand-in, token server, our agent worker) and one long conversation:
`--text-turns` `send_text` turns (every other one interrupted once the agent speaks, which adds
the `speaking -> listening` change of an interruption) and `--voice-turns` spoken turns.

Latency per change = the user's wall clock when the handler was invoked - the agent's
`AgentStateEvent.timestamp` (wall clock when the session emitted the change). Same machine, same
clock. It includes the notifier's queueing (one RPC in flight at a time, latest wins), the
agent's data channel, the SFU and the user's SDK. For scale: the round trip of the user's own
RPC calls (`send_text`/`interrupt`, including the agent's handler) is reported alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from devstack.stack import Stack
from simuser import SimulatedUser

from .common import (
    FAQS,
    QUESTIONS,
    AgentAttributeStates,
    fmt_ms,
    summarize,
    voice_turn,
)
from .harness import our_agent, running, start_run, user_stack
from .plotting import plt, save_figure

logger = logging.getLogger("bench.state_rpc")

NAME = "state_rpc"


async def conversation(
    stack: Stack, text_turns: int, voice_turns: int, rng: random.Random
) -> dict[str, Any]:
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    states = AgentAttributeStates(user)
    async with user:
        await user.publish_microphone()
        spoke = await user.wait_for_state("speaking", timeout=60)
        await user.wait_for_state("listening", after_seq=spoke.event.seq, timeout=60)
        for i in range(text_turns):
            mark = user.last_seq
            await user.send_text(QUESTIONS[i % len(QUESTIONS)])
            speaking = await user.wait_for_state("speaking", after_seq=mark, timeout=30)
            if i % 2 == 1:
                await asyncio.sleep(rng.uniform(0.2, 0.6))
                await user.interrupt()
            await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=60)
            await asyncio.sleep(rng.uniform(0.1, 0.4))
            if (i + 1) % 10 == 0:
                logger.info("text turn %d/%d", i + 1, text_turns)
        await asyncio.sleep(1.0)
        for i in range(voice_turns):
            sample = await voice_turn(user, states, QUESTIONS[i % len(QUESTIONS)])
            logger.info("voice turn %d/%d: %s", i + 1, voice_turns, sample.answer)
            await asyncio.sleep(0.5)
        states.close()
        changes = [
            {
                "seq": s.event.seq,
                "state": s.event.state,
                "previous": s.event.previous,
                "latency_ms": round(s.latency_ms, 2),
            }
            for s in user.recording.states
        ]
        calls = [
            {
                "method": c.method,
                "ms": round((c.ended.mono - c.started.mono) * 1e3, 2),
                "attempts": c.attempts,
            }
            for c in user.recording.rpc_calls
            if c.ok
        ]
    return {"changes": changes, "calls": calls}


def plot(data: dict[str, Any], stats: dict[str, Any], path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    lat = [c["latency_ms"] for c in data["changes"]]
    ax1.plot([c["seq"] for c in data["changes"]], lat, ".", markersize=4)
    for q, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
        v = stats["all"].get(q)
        if v is not None:
            ax1.axhline(v, linestyle=style, color="gray", label=f"{q} {v:.1f} ms")
    ax1.set_xlabel("state change seq (conversation order)")
    ax1.set_ylabel("agent change -> page handler, ms")
    ax1.set_yscale("log")
    ax1.legend(fontsize=8)
    ax1.set_title("Every state RPC of the conversation")
    by_state = stats["by_state"]
    names = sorted(by_state)
    ax2.boxplot(
        [[c["latency_ms"] for c in data["changes"] if c["state"] == n] for n in names],
        tick_labels=names,
    )
    ax2.set_yscale("log")
    ax2.set_ylabel("ms")
    ax2.set_title("By new state")
    save_figure(fig, path, title)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text-turns", type=int, default=60)
    parser.add_argument("--voice-turns", type=int, default=6)


def main() -> None:
    bench = start_run(
        NAME,
        "state RPC latency over one long conversation",
        _options,
        lambda args: {"text_turns": args.text_turns, "voice_turns": args.voice_turns},
    )
    args, result = bench.args, bench.result
    stack = user_stack()
    service = our_agent(stack, NAME)
    with running([stack], [service]):
        data = asyncio.run(conversation(stack, args.text_turns, args.voice_turns, bench.rng))
    by_state: dict[str, list[float]] = defaultdict(list)
    for change in data["changes"]:
        by_state[change["state"]].append(change["latency_ms"])
    all_lat = [c["latency_ms"] for c in data["changes"]]
    stats: dict[str, Any] = {
        "all": summarize(all_lat, 2),
        "by_state": {k: summarize(v, 2) for k, v in sorted(by_state.items())},
        "user_rpc_round_trip": summarize([c["ms"] for c in data["calls"]], 2),
        "seq_gaps": sum(
            1
            for a, b in zip(data["changes"], data["changes"][1:], strict=False)
            if b["seq"] != a["seq"] + 1
        ),
    }
    result.data = {"stats": stats, **data}
    result.row(
        "state RPC latency (all changes)",
        fmt_ms(stats["all"], "p50", "p95", "p99"),
        note=f"{len(all_lat)} changes; {stats['seq_gaps']} seq gaps (latest-wins collapses)",
    )
    for state, s in stats["by_state"].items():
        result.row(f"  -> {state}", fmt_ms(s, "p50", "p95", "p99"), note=f"n={s['n']}")
    result.row(
        "user -> agent RPC round trip (reference)",
        fmt_ms(stats["user_rpc_round_trip"], "p50", "p95"),
        note="send_text/interrupt incl. the agent's handler",
    )
    result.finish(lambda path, caption: plot(data, stats, path, caption))


if __name__ == "__main__":
    main()

"""Failover: a worker SIGKILLed under running sessions, and a livekit-server node SIGKILLed.

`python -m bench.failover` (`make bench-failover`, about 4 minutes with the defaults).

1. **Worker killed.** One livekit-server, two agent workers (`devstack.cluster`). First the
   burst of new sessions below runs with both workers alive (the comparison). Then `--running`
   sessions are greeted and left open; the worker serving most of them is SIGKILLed (its whole
   process group: worker and job processes, as when its machine dies). From that instant a new
   session starts every `--interval` s for `--window` s, then `--after` more 2 s apart. Per new
   session, on the user's clock from its token request: agent participant seen and first
   `listening` state RPC (a session with neither within the hang guard failed), and the worker
   that served it. Per session of the killed worker: when its user saw the agent leave.
2. **Node killed.** Two livekit-server nodes sharing Redis, one worker registered with node 0.
   Sessions are opened until `--node-sessions` rooms live on node 0 (each user connects through
   its room's node); each answers one text turn, node 1 is SIGKILLed, then each answers `--turns`
   more. Rooms node 1 hosted get one question too (answered or not, and what their users saw),
   and a new session every 2 s for `--window` s from the kill (then `--after` more) shows
   whether, and from when, new rooms get an agent again.

Target (issue 12): every new session in the 10 s after a worker is killed gets an agent; after
the node not hosting a room is killed, that room's session keeps answering.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from common.protocol import is_agent_identity
from devstack.cluster import Cluster, ClusterConfig
from simuser import SimulatedUser, Stamp

from .common import FAQS, ResultFile, fmt_ms, summarize
from .harness import NO_RATE_LIMIT, start_run
from .plotting import plt, save_figure

logger = logging.getLogger("bench.failover")

NAME = "failover"
# Hang guards, never budgets: a session or turn not done by then counts as failed.
SESSION_TIMEOUT_S = 60.0
TURN_TIMEOUT_S = 30.0
LEAVE_TIMEOUT_S = 90.0
# The target's window: new sessions started this soon after the kill must all get an agent.
TARGET_WINDOW_S = 10.0
AFTER_SPACING_S = 2.0
# Sessions opened at most while looking for rooms on node 0 (the node selector picks the node).
MAX_NODE_TRIES = 12

QUESTION, ANSWER = FAQS[0].question, FAQS[0].answer


def _room(user: SimulatedUser) -> str:
    assert user.grant is not None
    return user.grant.room


async def _poll(check: Any, timeout: float) -> Any:  # noqa: ASYNC109
    """`check()` once it is not None (TimeoutError after `timeout` s)."""
    async with asyncio.timeout(timeout):
        while True:
            value = check()
            if value is not None:
                return value
            await asyncio.sleep(0.2)


def _agent_seen(user: SimulatedUser) -> Stamp | None:
    return next((p.at for p in user.recording.participants if is_agent_identity(p.identity)), None)


async def greeted_user(cluster: Cluster, node: int | None = 0) -> SimulatedUser:
    """A connected user whose agent has greeted it and listens. `node=None`: through the node
    that hosts its room (known once the agent joined)."""
    user = await SimulatedUser.from_token_server(cluster.stack.token_url, faqs=FAQS)
    if node is None:
        node = await _poll(lambda: cluster.host_of(_room(user)), SESSION_TIMEOUT_S)
    user.url = cluster.node_urls[node]
    await user.connect()
    try:
        speaking = await user.wait_for_state("speaking", timeout=SESSION_TIMEOUT_S)
        await user.wait_for_state(
            "listening", after_seq=speaking.event.seq, timeout=SESSION_TIMEOUT_S
        )
    except BaseException:
        await user.aclose()
        raise
    return user


async def probe_session(cluster: Cluster, since: Stamp) -> dict[str, Any]:
    """One new session: token request -> agent seen -> first `listening`, then leave."""
    started = Stamp.now()
    out: dict[str, Any] = {"ok": False, "start_s": round(started.since(since), 2)}
    try:
        async with asyncio.timeout(SESSION_TIMEOUT_S):
            user = await SimulatedUser.from_token_server(cluster.stack.token_url, faqs=FAQS)
            user.url = cluster.node_urls[0]
            async with user:
                ready = await user.wait_for_state("listening", timeout=SESSION_TIMEOUT_S)
                seen = _agent_seen(user) or ready.received
                joined = min(seen, ready.received, key=lambda s: s.mono)
            out.update(
                ok=True,
                agent_join_ms=round(joined.since(started) * 1e3),
                ready_ms=round(ready.received.since(started) * 1e3),
                worker=cluster.worker_of(_room(user)),
            )
            logger.info(
                "new session at +%.1f s: agent after %d ms", out["start_s"], out["agent_join_ms"]
            )
    except (TimeoutError, OSError, RuntimeError) as exc:
        out["error"] = repr(exc)
        logger.warning("new session at +%.1f s failed: %r", out["start_s"], exc)
    return out


async def probe_sessions(
    cluster: Cluster, since: Stamp, interval: float, window: float, after: int
) -> list[dict[str, Any]]:
    """New sessions every `interval` s for `window` s after `since`, then `after` more."""
    offsets = [i * interval for i in range(int(window / interval))]
    offsets += [window + (i + 1) * AFTER_SPACING_S for i in range(after)]
    tasks = []
    for offset in offsets:
        await asyncio.sleep(max(0.0, offset - Stamp.now().since(since)))
        tasks.append(asyncio.create_task(probe_session(cluster, since)))
    return list(await asyncio.gather(*tasks))


async def text_turn(user: SimulatedUser) -> dict[str, Any]:
    """One typed question; ok when the agent's final answer arrived."""
    before, seq = Stamp.now(), user.last_seq
    try:
        await user.send_text(QUESTION)
        answer = await user.wait_for_transcript(
            speaker="agent", after=before, contains=ANSWER, timeout=TURN_TIMEOUT_S
        )
        # the turn is over when the agent listens again (the next question is not a barge-in)
        await user.wait_for_state("listening", after_seq=seq, timeout=TURN_TIMEOUT_S)
    except Exception as exc:  # an RPC error or a timeout: the turn failed, the run goes on
        return {"ok": False, "error": repr(exc)}
    return {"ok": answer.final, "answer_ms": round(answer.started.since(before) * 1e3)}


# ---- scenario 1: a worker killed ----------------------------------------------------------------


async def worker_kill(
    cluster: Cluster, running: int, interval: float, window: float, after: int
) -> dict[str, Any]:
    # The same burst of new sessions with both workers alive: what the join time is without a
    # failover on this machine at this moment (a burst of job processes costs CPU too).
    baseline = await probe_sessions(cluster, Stamp.now(), interval, window, after)
    users = [await greeted_user(cluster) for _ in range(running)]
    try:
        served = [await _poll(lambda u=u: cluster.worker_of(_room(u)), 30) for u in users]
        victim = max(set(served), key=served.count)
        agents = {_room(u): u.agent_identity for u in users}
        logger.info("sessions per worker %s; killing worker %d", served, victim)
        killed = Stamp.now()
        cluster.workers[victim].kill()
        probes_task = asyncio.create_task(probe_sessions(cluster, killed, interval, window, after))
        orphans = [u for u, w in zip(users, served, strict=True) if w == victim]
        left = await asyncio.gather(*(_left_after(u, agents[_room(u)], killed) for u in orphans))
        probes = await probes_task
    finally:
        for user in users:
            await user.aclose()
    return {
        "baseline": baseline,
        "served_before": served,
        "victim": victim,
        "agent_left_s": left,
        "new": probes,
    }


def _seen(user: SimulatedUser, kind: str, identity: str | None, since: Stamp) -> float | None:
    """Seconds from `since` until the user recorded `kind` (left, disconnected) of `identity`."""
    at = next(
        (
            e.at
            for e in user.recording.participants
            if e.kind == kind and (identity is None or e.identity == identity)
        ),
        None,
    )
    return None if at is None else round(at.since(since), 2)


async def _left_after(user: SimulatedUser, agent: str | None, since: Stamp) -> float | None:
    """Seconds from the kill until the user saw `agent` leave (None: not within the guard)."""
    try:
        left: float = await _poll(lambda: _seen(user, "left", agent, since), LEAVE_TIMEOUT_S)
    except TimeoutError:
        return None
    return left


# ---- scenario 2: a node killed ------------------------------------------------------------------


async def node_kill(
    cluster: Cluster, sessions: int, turns: int, window: float, after: int
) -> dict[str, Any]:
    users: list[SimulatedUser] = []
    hosts: list[int] = []
    try:
        while hosts.count(0) < sessions and len(users) < MAX_NODE_TRIES:
            user = await greeted_user(cluster, node=None)
            users.append(user)
            hosts.append(cluster.host_of(_room(user)) or 0)
        logger.info("rooms per node: %s", hosts)
        before = [await text_turn(u) for u in users]
        killed = Stamp.now()
        cluster.nodes[1].kill()
        # New sessions meanwhile: until the cluster forgets the dead node, it may place a new
        # room there (the token server then answers 503, "retry later").
        probes_task = asyncio.create_task(
            probe_sessions(cluster, killed, AFTER_SPACING_S, window, after)
        )
        kept = [u for u, h in zip(users, hosts, strict=True) if h == 0]
        lost = [u for u, h in zip(users, hosts, strict=True) if h != 0]
        after_kill: list[list[dict[str, Any]]] = [[] for _ in kept]
        for _ in range(turns):
            for i, user in enumerate(kept):
                after_kill[i].append(await text_turn(user))
        # What the users of the killed node's rooms saw: one more question, then their events.
        lost_view = []
        for user in lost:
            agent = user.agent_identity
            turn = await text_turn(user)
            lost_view.append(
                {
                    "turn": turn,
                    "connected": user.room.isconnected(),
                    "agent_left_s": _seen(user, "left", agent, killed),
                    "disconnected_s": _seen(user, "disconnected", None, killed),
                }
            )
        new = await probes_task
    finally:
        for user in users:
            await user.aclose()
    return {
        "hosts": hosts,
        "turn_before": before,
        "turns_after": after_kill,
        "hosted_by_killed_node": lost_view,
        "new": new,
    }


# ---- the run ------------------------------------------------------------------------------------


def summarize_worker_kill(
    data: dict[str, Any], window: float, result: ResultFile
) -> dict[str, Any]:
    new = data["new"]
    in_window = [p for p in new if p["start_s"] < window]
    ok = [p for p in in_window if p["ok"]]
    victim = data["victim"]
    on_victim = [p for p in new if p["ok"] and p.get("worker") == victim]
    left = [s for s in data["agent_left_s"] if s is not None]
    base_ok = [p for p in data["baseline"] if p["ok"]]
    stats: dict[str, Any] = {
        "baseline_ok": len(base_ok),
        "baseline": len(data["baseline"]),
        "baseline_agent_join_ms": summarize([p["agent_join_ms"] for p in base_ok], 0),
        "in_window": len(in_window),
        "in_window_ok": len(ok),
        "agent_join_ms": summarize([p["agent_join_ms"] for p in ok], 0),
        "ready_ms": summarize([p["ready_ms"] for p in ok], 0),
        "after_window_ok": sum(1 for p in new if p["start_s"] >= window and p["ok"]),
        "after_window": sum(1 for p in new if p["start_s"] >= window),
        "served_by_killed_worker": len(on_victim),
        "orphans": len(data["agent_left_s"]),
        "orphans_saw_agent_leave": len(left),
        "agent_left_s": summarize(left, 1),
    }
    result.row(
        f"worker killed: new sessions in the first {window:g} s with an agent",
        f"{len(ok)}/{len(in_window)}",
        baseline="target 100 %",
        note=f"agent joined {fmt_ms(stats['agent_join_ms'], 'p50', 'p95', 'max')}; "
        f"{stats['after_window_ok']}/{stats['after_window']} later; "
        f"{len(on_victim)} on the killed worker",
    )
    result.row(
        "same burst, no worker killed: sessions with an agent",
        f"{len(base_ok)}/{len(data['baseline'])}",
        note=f"agent joined {fmt_ms(stats['baseline_agent_join_ms'], 'p50', 'p95', 'max')} "
        "(two workers; the comparison for the figure above)",
    )
    result.row(
        "worker killed: its users saw the agent leave",
        f"{len(left)}/{len(data['agent_left_s'])}",
        note=f"after {stats['agent_left_s'].get('p50')} s (p50) of the kill",
    )
    return stats


def summarize_node_kill(data: dict[str, Any], result: ResultFile) -> dict[str, Any]:
    turns = [t for session in data["turns_after"] for t in session]
    ok = [t for t in turns if t["ok"]]
    before = [t for t, h in zip(data["turn_before"], data["hosts"], strict=True) if h == 0]
    stats: dict[str, Any] = {
        "sessions_kept": len(data["turns_after"]),
        "turns_after": len(turns),
        "turns_after_ok": len(ok),
        "answer_ms_before": summarize([t["answer_ms"] for t in before if t["ok"]], 0),
        "answer_ms_after": summarize([t["answer_ms"] for t in ok], 0),
        "killed_host_sessions": len(data["hosted_by_killed_node"]),
        "killed_host_answered": sum(1 for v in data["hosted_by_killed_node"] if v["turn"]["ok"]),
        "new_ok": sum(1 for p in data["new"] if p["ok"]),
        "new": len(data["new"]),
        "new_failed_at_s": [p["start_s"] for p in data["new"] if not p["ok"]],
    }
    result.row(
        "node killed: turns answered in rooms of the other node",
        f"{len(ok)}/{len(turns)}",
        baseline="target 100 %",
        note=f"{stats['sessions_kept']} sessions; answer "
        f"{fmt_ms(stats['answer_ms_after'], 'p50', 'max')} "
        f"(before the kill {fmt_ms(stats['answer_ms_before'], 'p50')})",
    )
    result.row(
        "node killed: new sessions with an agent",
        f"{stats['new_ok']}/{stats['new']}",
        note="one every 2 s from the kill; failed ones started at "
        f"{stats['new_failed_at_s'] or '-'} s (token server 503 while the dead node is still "
        "picked for new rooms)",
    )
    result.row(
        "node killed: its own rooms answered a question after it",
        f"{stats['killed_host_answered']}/{stats['killed_host_sessions']}",
        note="rooms the killed node hosted (no target: informative)",
    )
    return stats


def plot(data: dict[str, Any], window: float, path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    if "worker_kill" in data:
        new = data["worker_kill"]["new"]
        ok = [p for p in new if p["ok"]]
        ax1.scatter([p["start_s"] for p in ok], [p["agent_join_ms"] for p in ok], label="agent")
        base = [p for p in data["worker_kill"]["baseline"] if p["ok"]]
        ax1.scatter(
            [p["start_s"] for p in base],
            [p["agent_join_ms"] for p in base],
            marker=".",
            color="grey",
            label="same burst, no kill",
        )
        failed = [p["start_s"] for p in new if not p["ok"]]
        if failed:
            ax1.scatter(failed, [0] * len(failed), marker="x", color="red", label="no agent")
        ax1.axvline(window, color="grey", linestyle="--", linewidth=1)
        ax1.legend(fontsize=8)
    ax1.set_xlabel("new session's start, s after the worker was killed")
    ax1.set_ylabel("token request -> agent joined, ms")
    ax1.set_title("Worker killed: new sessions")
    ax1.grid(alpha=0.3)
    if "node_kill" in data:
        node = data["node_kill"]
        for i, session in enumerate(node["turns_after"]):
            xs = list(range(1, len(session) + 1))
            ax2.plot(
                xs,
                [t.get("answer_ms", 0) if t["ok"] else 0 for t in session],
                "o-",
                label=f"session {i}",
            )
        ax2.legend(fontsize=8)
    ax2.set_xlabel("text turn after the node was killed")
    ax2.set_ylabel("question -> answer, ms (0 = failed)")
    ax2.set_title("Node killed: rooms of the surviving node")
    ax2.grid(alpha=0.3)
    save_figure(fig, path, title)


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario", choices=("both", "worker", "node"), default="both", help="what to kill"
    )
    parser.add_argument("--running", type=int, default=4, help="sessions open at the kill")
    parser.add_argument("--interval", type=float, default=0.5, help="s between new sessions")
    parser.add_argument("--window", type=float, default=TARGET_WINDOW_S, help="s of new sessions")
    parser.add_argument("--after", type=int, default=3, help="new sessions after the window")
    parser.add_argument("--node-sessions", type=int, default=2, help="rooms on the kept node")
    parser.add_argument("--turns", type=int, default=3, help="text turns after the node kill")


def main(argv: list[str] | None = None) -> None:
    bench = start_run(
        NAME,
        "failover: a worker and a livekit-server node SIGKILLed under running sessions",
        _options,
        lambda a: {k: v for k, v in vars(a).items() if k not in ("results_dir", "verbose")},
        argv,
    )
    args, result = bench.args, bench.result
    data: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    if args.scenario in ("both", "worker"):
        with Cluster(ClusterConfig(nodes=1, workers=2, env=dict(NO_RATE_LIMIT))) as cluster:
            data["worker_kill"] = asyncio.run(
                worker_kill(cluster, args.running, args.interval, args.window, args.after)
            )
        stats["worker_kill"] = summarize_worker_kill(data["worker_kill"], args.window, result)
    if args.scenario in ("both", "node"):
        with Cluster(ClusterConfig(nodes=2, workers=1, env=dict(NO_RATE_LIMIT))) as cluster:
            data["node_kill"] = asyncio.run(
                node_kill(cluster, args.node_sessions, args.turns, args.window, args.after)
            )
        stats["node_kill"] = summarize_node_kill(data["node_kill"], result)
    result.data = {"stats": stats, **data}
    result.finish(lambda path, caption: plot(data, args.window, path, caption))


if __name__ == "__main__":
    main()

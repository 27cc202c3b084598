"""Scale-out on LiveKit's distributed mode: several nodes sharing Redis, several agent workers.

- Nodes: a user reaches its room and its agent through any node; a node that neither hosts the
  room nor carries its participants' connections can die and the session goes on answering.
- Workers: jobs spread over the workers by the load they report; a SIGKILLed worker's users see
  the agent leave and every new session lands on the survivor; a SIGTERMed worker finishes its
  session while new ones go to the other worker.

Every cluster is this module's own (Redis, livekit-server nodes, stand-in, token server and
workers on free loopback ports); the waits are hang guards, never timings.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import pytest
from fault_helpers import (
    ANSWER,
    FAQS,
    JOIN_TIMEOUT,
    QUESTION,
    ask,
    wait_for,
    wait_for_greeting,
    wait_for_leave,
)

from devstack.cluster import Cluster, ClusterConfig
from simuser import SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]

_ENV = {"LOG_FORMAT": "json", "RATE_LIMIT_PER_MINUTE": "100000"}


async def _user(cluster: Cluster, node: int = 0) -> SimulatedUser:
    """A user with a token from the token server, connecting through node `node`."""
    user = await SimulatedUser.from_token_server(cluster.stack.token_url, faqs=FAQS)
    user.url = cluster.node_urls[node]
    return user


def _room(user: SimulatedUser) -> str:
    assert user.grant is not None
    return user.grant.room


async def _served_by(cluster: Cluster, user: SimulatedUser) -> int:
    return await wait_for(lambda: cluster.worker_of(_room(user)), "the job's worker")


# --- nodes ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[Cluster]:
    """Three nodes; worker 0 registers with node 0, worker 1 with node 1."""
    with Cluster(ClusterConfig(nodes=3, workers=2, env=_ENV)) as cluster:
        yield cluster


async def _greeted_and_answered(user: SimulatedUser) -> None:
    async with user:
        await wait_for_greeting(user)
        assert (await ask(user, QUESTION, expect=ANSWER)).final


async def test_users_reach_room_and_agent_through_any_node(three_nodes: Cluster) -> None:
    """One user through each node, at the same time: each is greeted and answered."""
    users = [await _user(three_nodes, node) for node in range(len(three_nodes.nodes))]
    async with asyncio.TaskGroup() as group:
        for user in users:
            group.create_task(_greeted_and_answered(user))
    assert all(three_nodes.host_of(_room(user)) is not None for user in users)


async def test_a_node_the_session_does_not_use_can_die(three_nodes: Cluster) -> None:
    """Room on node H, the user through H, the agent through its worker's node W: killing a
    node that is neither leaves the session answering (the last test: it kills a node)."""
    cluster = three_nodes
    user = await _user(cluster, 0)
    async with user:
        await wait_for_greeting(user)
        host = await wait_for(lambda: cluster.host_of(_room(user)), "the room's node")
        worker = await _served_by(cluster, user)
        used = {host, 0, worker % len(cluster.nodes)}
        victim = next(i for i in range(len(cluster.nodes)) if i not in used)
        cluster.nodes[victim].kill()
        answer = await ask(user, QUESTION, expect=ANSWER)
        assert answer.final
        assert user.room.isconnected()


# --- workers -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def three_workers() -> Iterator[Cluster]:
    """One node, three workers: the first test kills one, the second drains another."""
    with Cluster(ClusterConfig(nodes=1, workers=3, env=_ENV)) as cluster:
        yield cluster


def _alive(cluster: Cluster) -> set[int]:
    return {i for i, worker in enumerate(cluster.workers) if worker.running}


async def test_sigkilled_worker_its_users_see_the_agent_leave_new_sessions_go_to_survivors(
    three_workers: Cluster,
) -> None:
    cluster = three_workers
    users = [await _user(cluster) for _ in range(4)]
    try:
        async with asyncio.TaskGroup() as group:
            for user in users:
                group.create_task(user.connect())
        served: dict[int, list[SimulatedUser]] = {i: [] for i in range(len(cluster.workers))}
        for user in users:
            await wait_for_greeting(user)
            served[await _served_by(cluster, user)].append(user)
        # Spread by reported load: four sessions did not all go to one worker.
        assert sum(1 for sessions in served.values() if sessions) >= 2, served

        victim = max(served, key=lambda i: len(served[i]))
        agents = {id(u): u.agent_identity for u in served[victim]}
        cluster.workers[victim].kill()
        for user in served[victim]:
            identity = agents[id(user)]
            assert identity is not None
            await wait_for_leave(user, identity)
        # The other sessions are untouched.
        for worker, sessions in served.items():
            if worker != victim:
                for user in sessions:
                    assert (await ask(user, QUESTION, expect=ANSWER)).final

        # Every new session gets an agent, from a survivor.
        late = [await _user(cluster) for _ in range(3)]
        async with asyncio.TaskGroup() as group:
            for user in late:
                group.create_task(_greeted_and_answered(user))
        landed = {await _served_by(cluster, user) for user in late}
        assert landed <= _alive(cluster) == set(served) - {victim}
    finally:
        for user in users:
            await user.aclose()


async def test_sigtermed_worker_finishes_its_session_new_sessions_go_to_the_other(
    three_workers: Cluster,
) -> None:
    cluster = three_workers
    assert len(_alive(cluster)) == 2, "runs after the SIGKILL test, with two workers left"
    first = await _user(cluster)
    async with first:
        await wait_for_greeting(first)
        draining = await _served_by(cluster, first)
        [other] = _alive(cluster) - {draining}
        worker = cluster.workers[draining]
        assert worker.proc is not None
        proc = worker.proc
        worker.send_signal(signal.SIGTERM)

        second = await _user(cluster)
        async with second:
            await wait_for_greeting(second)
            assert await _served_by(cluster, second) == other
        # The draining worker's session is not cut.
        assert (await ask(first, QUESTION, expect=ANSWER)).final
        assert worker.running
    # Once its user has left, the drained worker exits cleanly.
    assert await asyncio.to_thread(proc.wait, JOIN_TIMEOUT) == 0

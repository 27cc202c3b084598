"""LiveKit's distributed mode on one machine: Redis, N livekit-server nodes, M agent workers.

The nodes share one Redis (rooms are routed to a node; a client may connect through any node);
the stack's services (stand-in, token server, the first agent worker) run against node 0 and the
other workers register with the other nodes in turn, so a job is dispatched to a worker whatever
node its room lives on. Everything stays on loopback, like the single-node stack.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

from .foreground import run_until_stopped
from .lifecycle import Lifecycle
from .livekit_server import LiveKitServer, LiveKitServerConfig
from .paths import LOG_DIR, REPO_ROOT
from .ports import free_tcp_port
from .redis_server import RedisConfig, RedisServer
from .service import Service
from .stack import ServiceName, Stack, StackConfig

__all__ = ["Cluster", "ClusterConfig"]

logger = logging.getLogger(__name__)


@dataclass
class ClusterConfig:
    nodes: int = 2
    workers: int = 2
    services: tuple[ServiceName, ...] = ("standin", "token_server", "agent")
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.workers < 1:
            raise ValueError("a cluster needs at least one node and one worker")
        if "agent" not in self.services:
            raise ValueError("a cluster runs agent workers: keep 'agent' in services")


class Cluster(Lifecycle):
    def __init__(self, config: ClusterConfig | None = None) -> None:
        self.config = cfg = config or ClusterConfig()
        self.redis = RedisServer(RedisConfig())
        redis = self.redis.config
        first = LiveKitServerConfig.on_free_ports().node(redis.address, redis.password)
        node_configs = [first] + [
            first.node(redis.address, redis.password) for _ in range(cfg.nodes - 1)
        ]
        self.nodes = [
            LiveKitServer(c, log_path=LOG_DIR / f"livekit-node{i}-{c.port}.log")
            for i, c in enumerate(node_configs)
        ]
        self.stack = Stack(
            StackConfig(
                livekit=first,
                services=cfg.services,
                run_livekit=False,
                env={"REDIS_URL": redis.url, **cfg.env},
            )
        )
        first_worker = self.stack.services["agent"]
        self.workers: list[Service] = [first_worker]
        for i in range(1, cfg.workers):
            node = node_configs[i % cfg.nodes]
            env = {
                **first_worker.env,
                "LIVEKIT_URL": node.url,
                "AGENT_HTTP_PORT": str(free_tcp_port()),
            }
            env.pop("AGENT_METRICS_PORT", None)
            self.workers.append(
                Service(
                    f"agent-{i}",
                    first_worker.argv,
                    env=env,
                    cwd=first_worker.cwd,
                    log_path=LOG_DIR / f"agent-worker{i}-{first.port}.log",
                    ready=first_worker.ready,
                )
            )

    @property
    def node_urls(self) -> list[str]:
        return [node.config.url for node in self.nodes]

    def host_of(self, room: str) -> int | None:
        """The node that hosts `room` (its log starts the room's RTC sessions), if any yet."""
        marker = f'"room": "{room}"'
        for i, node in enumerate(self.nodes):
            with node.log_path.open(errors="replace") as log:
                if any("starting RTC session" in line and marker in line for line in log):
                    return i
        return None

    def worker_of(self, room: str) -> int | None:
        """The worker whose job serves `room` (its log names the room), if any yet."""
        for i, worker in enumerate(self.workers):
            with worker.log_path.open(errors="replace") as log:
                log.seek(worker.log_offset)
                if any(room in line for line in log):
                    return i
        return None

    def services(self) -> Iterator[Service]:
        """Every service of the cluster: the stack's (with the first worker) and the workers."""
        yield from self.stack.services.values()
        yield from self.workers[1:]

    def pids(self) -> list[int]:
        pids = [*self.stack.pids(), *(w.pid for w in self.workers[1:] if w.pid is not None)]
        pids += [n.pid for n in self.nodes if n.pid is not None]
        if self.redis.pid is not None:
            pids.append(self.redis.pid)
        return pids

    def start(self) -> Cluster:
        try:
            self.redis.start()
            for node in self.nodes:
                node.start()
            self.stack.start()
            for worker in self.workers[1:]:
                worker.start(timeout=120)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for worker in reversed(self.workers[1:]):
            worker.stop()
        self.stack.stop()
        for node in reversed(self.nodes):
            node.stop()
        self.redis.stop()


def main(argv: list[str] | None = None) -> int:
    """`make dev-cluster`: a cluster on free loopback ports until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.cluster",
        description="Run Redis, N livekit-server nodes and M agent workers (plus the stand-in, "
        "token server and playground) on loopback until Ctrl-C.",
    )
    parser.add_argument("--nodes", type=int, default=2, help="livekit-server nodes (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="agent workers (default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    services: tuple[ServiceName, ...] = ("standin", "token_server", "agent")
    if (REPO_ROOT / "playground" / "dist" / "index.html").exists():
        services = (*services, "playground")
    cluster = Cluster(ClusterConfig(nodes=args.nodes, workers=args.workers, services=services))
    stack = cluster.stack
    lines = [
        "",
        f"  A {args.nodes}-node cluster with {args.workers} agent workers. Ctrl-C stops it.",
        *(f"  Node {i}         {url}" for i, url in enumerate(cluster.node_urls)),
        f"  Redis          {cluster.redis.config.address} (password in the node configs)",
        f"  Token endpoint {stack.token_url}",
        f"  Playground     {stack.playground_url if 'playground' in services else '-'}",
        f"  Logs           {LOG_DIR}",
        "",
    ]
    run_until_stopped(cluster, cluster.services, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

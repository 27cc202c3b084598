"""The whole local stack as one object: livekit-server, stand-in, token server, agent, playground.

Used by `make dev` (fixed ports), by the test fixtures and by the benchmarks (free ports), so every
one of them runs the very same processes the same way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .lifecycle import Lifecycle
from .livekit_server import LiveKitServer, LiveKitServerConfig
from .paths import LOG_DIR, REPO_ROOT
from .ports import free_tcp_port
from .service import Service, http_ok, log_contains

__all__ = ["SERVICES", "SERVICE_NAMES", "ServiceSpec", "Stack", "StackConfig", "StackPorts"]

logger = logging.getLogger(__name__)

ServiceName = Literal["standin", "token_server", "agent", "playground"]

# Variables of ours that must never leak from the caller's shell into a test stack.
_OWNED_VARS = (
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "TOKEN_SERVER_API_KEY",
    "ROOM_PREFIX",
)


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service of the stack: `python -m <module> [<args>]`, ready when `ready`."""

    name: ServiceName
    module: str
    log_name: str
    ready: Callable[[StackConfig], Callable[[Service], bool]]
    args: Callable[[StackConfig], list[str]] = lambda _: []
    start_timeout: float = 60.0
    # Only with the stand-in as the provider (no OPENAI_API_KEY).
    standin_only: bool = False


def _health(
    port: Callable[[StackPorts], int],
) -> Callable[[StackConfig], Callable[[Service], bool]]:
    return lambda cfg: http_ok(f"http://127.0.0.1:{port(cfg.ports)}/healthz")


# Every service, in start order (stopped in reverse).
SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("standin", "standin", "standin", _health(lambda p: p.standin), standin_only=True),
    ServiceSpec("token_server", "token_server", "token-server", _health(lambda p: p.token_server)),
    ServiceSpec(
        "agent",
        "agent",
        "agent",
        # The worker is useful only once livekit-server has accepted its registration.
        lambda _: log_contains("registered worker"),
        args=lambda cfg: [cfg.agent_mode],
        start_timeout=120.0,
    ),
    ServiceSpec(
        "playground",
        "devstack.playground_server",
        "playground",
        _health(lambda p: p.playground),
    ),
)
SERVICE_NAMES: tuple[ServiceName, ...] = tuple(spec.name for spec in SERVICES)


@dataclass(frozen=True)
class StackPorts:
    token_server: int = 8080
    standin: int = 8787
    agent_http: int = 8081
    playground: int = 5173

    @classmethod
    def free(cls) -> StackPorts:
        return cls(free_tcp_port(), free_tcp_port(), free_tcp_port(), free_tcp_port())


@dataclass
class StackConfig:
    livekit: LiveKitServerConfig = field(default_factory=LiveKitServerConfig.on_free_ports)
    ports: StackPorts = field(default_factory=StackPorts.free)
    services: tuple[ServiceName, ...] = SERVICE_NAMES
    # True: start the stand-in and name it in OPENAI_BASE_URL (the agent never picks it by
    # itself: with no provider named it refuses to start). None: the real OpenAI when
    # OPENAI_API_KEY is set in `base_env`, else the stand-in.
    use_standin: bool | None = True
    agent_mode: Literal["start", "dev"] = "start"
    agent_name: str = "avatar-agent"
    # Extra variables for every service (override the computed ones).
    env: dict[str, str] = field(default_factory=dict)
    base_env: dict[str, str] = field(default_factory=lambda: StackConfig.isolated_env())
    log_dir: Path = LOG_DIR
    run_livekit: bool = True
    # A remote LiveKit (Cloud) to use instead of the local server's URL (with run_livekit off).
    livekit_url: str | None = None

    @staticmethod
    def isolated_env() -> dict[str, str]:
        """The caller's environment without any of our settings: what tests and benchmarks use."""
        return {k: v for k, v in os.environ.items() if k not in _OWNED_VARS}


class Stack(Lifecycle):
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        cfg = self.config
        self.livekit = LiveKitServer(cfg.livekit, log_path=self._log("livekit-server"))
        self.services: dict[str, Service] = {}
        use_standin = cfg.use_standin
        if use_standin is None:
            use_standin = not cfg.base_env.get("OPENAI_API_KEY")
        self.uses_standin = use_standin
        env = self._environment(use_standin)
        self.env = env
        self.specs = {
            spec.name: spec
            for spec in SERVICES
            if spec.name in cfg.services and (use_standin or not spec.standin_only)
        }
        for spec in self.specs.values():
            self.services[spec.name] = Service(
                spec.name,
                [sys.executable, "-m", spec.module, *spec.args(cfg)],
                env=env,
                cwd=REPO_ROOT,
                log_path=self._log(spec.log_name),
                ready=spec.ready(cfg),
            )

    def _log(self, name: str) -> Path:
        return self.config.log_dir / f"{name}-{self.config.livekit.port}.log"

    def _environment(self, use_standin: bool) -> dict[str, str]:
        cfg = self.config
        p = cfg.ports
        env = dict(cfg.base_env)
        room_prefix = env.get("ROOM_PREFIX") or env.get("VITE_ROOM_PREFIX") or "avatar"
        playground_origins = [
            f"http://127.0.0.1:{p.playground}",
            f"http://localhost:{p.playground}",
        ]
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "LIVEKIT_URL": self.livekit_url,
                "LIVEKIT_API_KEY": cfg.livekit.api_key,
                "LIVEKIT_API_SECRET": cfg.livekit.api_secret,
                "AGENT_NAME": cfg.agent_name,
                "TOKEN_SERVER_HOST": "127.0.0.1",
                "TOKEN_SERVER_PORT": str(p.token_server),
                "CORS_ORIGINS": ",".join(playground_origins),
                "STANDIN_HOST": "127.0.0.1",
                "STANDIN_PORT": str(p.standin),
                "AGENT_HTTP_PORT": str(p.agent_http),
                # Local stacks share the machine with tests and tools: cap jobs by count,
                # not by whole-machine CPU load.
                "AGENT_MAX_JOBS": env.get("AGENT_MAX_JOBS", "50"),
                "PLAYGROUND_PORT": str(p.playground),
                "PLAYGROUND_CONFIG": json.dumps(
                    {
                        "livekitUrl": self.livekit_url,
                        "tokenUrl": f"http://127.0.0.1:{p.token_server}/api/token",
                        "roomPrefix": room_prefix,
                    }
                ),
            }
        )
        if use_standin:
            env["OPENAI_BASE_URL"] = f"http://127.0.0.1:{p.standin}/v1"
            env.pop("OPENAI_API_KEY", None)
        env.update(cfg.env)
        return env

    # --- URLs -------------------------------------------------------------------------------
    @property
    def livekit_url(self) -> str:
        return self.config.livekit_url or self.config.livekit.url

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ports.token_server}/api/token"

    @property
    def standin_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ports.standin}/v1"

    @property
    def playground_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ports.playground}/"

    @property
    def agent_health_url(self) -> str:
        return f"http://127.0.0.1:{self.config.ports.agent_http}/"

    @property
    def api_key(self) -> str:
        return self.config.livekit.api_key

    @property
    def api_secret(self) -> str:
        return self.config.livekit.api_secret

    def pids(self) -> list[int]:
        pids = [s.pid for s in self.services.values() if s.pid is not None]
        if self.livekit.pid is not None:
            pids.append(self.livekit.pid)
        return pids

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Stack:
        try:
            if self.config.run_livekit:
                self.livekit.start()
            for name, spec in self.specs.items():
                logger.info("starting %s", name)
                self.services[name].start(timeout=spec.start_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        self.livekit.stop()

    def restart_agent(self) -> None:
        agent = self.services["agent"]
        agent.stop()
        agent.start(timeout=self.specs["agent"].start_timeout)

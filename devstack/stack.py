"""The whole local stack as one object: livekit-server, stand-in, token server, agent, playground.

Used by `make dev` (fixed ports), by the test fixtures and by the benchmarks (free ports), so every
one of them runs the very same processes the same way.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from .livekit_server import LiveKitServer, LiveKitServerConfig
from .paths import LOG_DIR, REPO_ROOT
from .ports import free_tcp_port
from .service import Service, http_ok, log_contains

__all__ = ["SERVICE_NAMES", "Stack", "StackConfig", "StackPorts"]

logger = logging.getLogger(__name__)

ServiceName = Literal["standin", "token_server", "agent", "playground"]
SERVICE_NAMES: tuple[ServiceName, ...] = ("standin", "token_server", "agent", "playground")

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
    # None: use the real OpenAI when OPENAI_API_KEY is set in `base_env`, else the stand-in.
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


class Stack:
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
        py = sys.executable
        p = cfg.ports
        if use_standin and "standin" in cfg.services:
            self.services["standin"] = Service(
                "standin",
                [py, "-m", "standin"],
                env=env,
                log_path=self._log("standin"),
                ready=http_ok(f"http://127.0.0.1:{p.standin}/healthz"),
            )
        if "token_server" in cfg.services:
            self.services["token_server"] = Service(
                "token_server",
                [py, "-m", "token_server"],
                env=env,
                log_path=self._log("token-server"),
                ready=http_ok(f"http://127.0.0.1:{p.token_server}/healthz"),
            )
        if "agent" in cfg.services:
            self.services["agent"] = self._agent_service()
        if "playground" in cfg.services:
            self.services["playground"] = Service(
                "playground",
                [py, "-m", "devstack.playground_server"],
                env=env,
                log_path=self._log("playground"),
                ready=http_ok(f"http://127.0.0.1:{p.playground}/healthz"),
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

    def _agent_service(self) -> Service:
        return Service(
            "agent",
            [sys.executable, "-m", "agent", self.config.agent_mode],
            env=self.env,
            cwd=REPO_ROOT,
            log_path=self._log("agent"),
            # The worker is useful only once livekit-server has accepted its registration.
            ready=log_contains("registered worker"),
        )

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
            for service in self.services.values():
                logger.info("starting %s", service.name)
                service.start(timeout=120 if service.name == "agent" else 60)
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
        agent.start(timeout=120)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

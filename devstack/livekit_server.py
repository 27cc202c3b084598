"""Build a pinned livekit-server from the Go module proxy and run it on loopback only.

No registry ships the binary, so it is built once with the machine's Go into `.cache/` (keyed by
version) and reused. The generated config keeps every packet on 127.0.0.0/8: loopback-only ICE
candidates, no public STUN servers handed to clients, bound to 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .paths import CACHE_DIR, LOG_DIR
from .ports import free_tcp_port, free_udp_port

__all__ = [
    "LIVEKIT_SERVER_VERSION",
    "LiveKitServer",
    "LiveKitServerConfig",
    "ensure_livekit_server",
    "generate_api_secret",
]

logger = logging.getLogger(__name__)

LIVEKIT_SERVER_VERSION = "v1.13.5"
_MODULE = "github.com/livekit/livekit-server/cmd/server"


def _binary_path(version: str) -> Path:
    return CACHE_DIR / "livekit-server" / version / "livekit-server"


def ensure_livekit_server(version: str = LIVEKIT_SERVER_VERSION) -> Path:
    """Return the path of the built binary, building it first when this version is missing."""
    binary = _binary_path(version)
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise RuntimeError("building livekit-server needs Go (>= 1.26) on PATH")
    gobin = binary.parent / "bin"
    gobin.mkdir(parents=True, exist_ok=True)
    print(
        f"building livekit-server {version} with {go} (first run only, a few minutes)...",
        file=sys.stderr,
        flush=True,
    )
    env = {**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    subprocess.run([go, "install", "-v", f"{_MODULE}@{version}"], env=env, check=True)
    (gobin / "server").rename(binary)
    print(f"built {binary}", file=sys.stderr, flush=True)
    return binary


def generate_api_secret() -> str:
    # livekit-server flags secrets under 32 characters; PyJWT warns on them.
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class LiveKitServerConfig:
    """Ports and keys of one loopback-only livekit-server instance."""

    port: int = 7880
    rtc_udp_port: int = 7882
    api_key: str = "devkey"
    api_secret: str = field(default_factory=generate_api_secret)
    # Distributed mode: nodes that share one Redis route rooms between them.
    redis_address: str | None = None
    redis_password: str | None = None

    @classmethod
    def on_free_ports(cls, **kwargs: str) -> LiveKitServerConfig:
        return cls(
            port=free_tcp_port(),
            rtc_udp_port=free_udp_port(),
            **kwargs,
        )

    def node(self, redis_address: str, redis_password: str) -> LiveKitServerConfig:
        """Another node of the same cluster: same keys and Redis, its own free ports."""
        return LiveKitServerConfig(
            port=free_tcp_port(),
            rtc_udp_port=free_udp_port(),
            api_key=self.api_key,
            api_secret=self.api_secret,
            redis_address=redis_address,
            redis_password=redis_password,
        )

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_yaml(self) -> str:
        # JSON is valid YAML; it spares a YAML dependency and quoting mistakes.
        import json

        config = {
            "port": self.port,
            "bind_addresses": ["127.0.0.1"],
            "rtc": {
                # No ICE-TCP: its listener binds every interface, and clients then connect from
                # non-loopback addresses. UDP (filtered to 127.0.0.1 below) is all loopback needs.
                "tcp_port": 0,
                "udp_port": self.rtc_udp_port,
                "node_ip": "127.0.0.1",
                "use_external_ip": False,
                "enable_loopback_candidate": True,
                "ips": {"includes": ["127.0.0.1/32"]},
                # A loopback address: clients get no public STUN server (nothing answers here,
                # and host candidates on loopback need none).
                "stun_servers": ["127.0.0.1:3478"],
            },
            "keys": {self.api_key: self.api_secret},
            "logging": {"level": "info", "json": False},
            "room": {"empty_timeout": 30, "departure_timeout": 10},
            # Offer jobs until a worker reports full load; our local workers report their share
            # of AGENT_MAX_JOBS (the 0.7 default would hold back a third of the capacity).
            "agents": {"target_load": 1.0},
        }
        if self.redis_address is not None:
            config["redis"] = {"address": self.redis_address, "password": self.redis_password}
        return json.dumps(config, indent=2)


class LiveKitServer:
    """A running livekit-server process; use as a context manager or call start/stop."""

    def __init__(self, config: LiveKitServerConfig, *, log_path: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path or LOG_DIR / f"livekit-server-{config.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 30.0) -> LiveKitServer:
        binary = ensure_livekit_server()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        config_path = self.log_path.with_suffix(".yaml")
        config_path.write_text(self.config.to_yaml())
        config_path.chmod(0o600)  # it holds the API secret
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [str(binary), "--config", str(config_path), "--bind", "127.0.0.1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self._wait_ready(timeout)
        logger.info("livekit-server ready at %s (log %s)", self.config.url, self.log_path)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(
                    f"livekit-server exited with {self._proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(self.config.http_url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"livekit-server did not answer within {timeout}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: a node dying, not shutting down."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> LiveKitServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

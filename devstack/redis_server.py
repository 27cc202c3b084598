"""A Redis server on loopback for the multi-node stack (Debian's `redis-server`).

livekit-server nodes share it to route rooms (distributed mode), and token servers share their
rate limit through it. Bound to 127.0.0.1 only, protected mode on, a generated password, and no
persistence: it holds nothing that must outlive the stack.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from .paths import LOG_DIR
from .ports import free_tcp_port

__all__ = ["RedisConfig", "RedisServer"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedisConfig:
    port: int = field(default_factory=free_tcp_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """For clients such as `limits` (redis-py): password in the URL, database 0."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


def _ping(config: RedisConfig, timeout: float = 1.0) -> bool:
    """AUTH + PING over RESP; True when the server answers PONG."""
    request = (
        f"*2\r\n$4\r\nAUTH\r\n${len(config.password)}\r\n{config.password}\r\n*1\r\n$4\r\nPING\r\n"
    ).encode()
    try:
        with socket.create_connection(("127.0.0.1", config.port), timeout=timeout) as sock:
            sock.sendall(request)
            answer = b""
            while b"PONG" not in answer and len(answer) < 1024:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                answer += chunk
            return b"PONG" in answer
    except OSError:
        return False


class RedisServer:
    def __init__(self, config: RedisConfig | None = None, *, log_path: Path | None = None) -> None:
        self.config = config or RedisConfig()
        self.log_path = log_path or LOG_DIR / f"redis-{self.config.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 15.0) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The password goes in through stdin as a config file, never on the command line.
        args = [binary, "-", "--port", str(self.config.port)]
        config = "\n".join(
            [
                "bind 127.0.0.1",
                "protected-mode yes",
                f'requirepass "{self.config.password}"',
                'save ""',
                "appendonly no",
                "daemonize no",
                f"dir {self.log_path.parent}",
                f"dbfilename redis-{self.config.port}.rdb",
            ]
        )
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log, stderr=log)
        log.close()
        assert self._proc.stdin is not None
        self._proc.stdin.write(config.encode() + b"\n")
        self._proc.stdin.close()
        deadline = time.monotonic() + timeout
        while not _ping(self.config):
            if self._proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"redis-server did not answer; see {self.log_path}")
            time.sleep(0.05)
        logger.info("redis ready at %s (log %s)", self.config.address, self.log_path)
        return self

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

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

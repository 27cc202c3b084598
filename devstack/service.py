"""One child process of the stack: own process group, logged to a file, health-checked."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["Service", "http_ok", "log_contains"]


def http_ok(url: str) -> Callable[[Service], bool]:
    def check(_: Service) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    return check


def log_contains(text: str) -> Callable[[Service], bool]:
    """Ready once `text` appears in what this run of the service wrote to its log."""
    needle = text.encode()

    def check(service: Service) -> bool:
        try:
            with service.log_path.open("rb") as log:
                log.seek(service.log_offset)
                return needle in log.read()
        except FileNotFoundError:
            return False

    return check


class Service:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        ready: Callable[[Service], bool],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.ready = ready
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        # Logs are appended to; readiness looks only past where this run started writing.
        self.log_offset = 0

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.log_offset = log.tell()
            # Own process group: stopping the service also stops what it spawned (job processes).
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float) -> None:
        """Until `ready` holds; stops the service and raises if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited early; see {self.log_path}")
            if self.ready(self):
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} not ready within {timeout}s; see {self.log_path}")

    def send_signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.running:
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0, sig: signal.Signals = signal.SIGTERM) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            self.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                proc.wait()
        # Children that outlived the leader (e.g. orphaned job processes) go too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self.proc = None

    def kill(self) -> None:
        self.stop(timeout=0.1, sig=signal.SIGKILL)

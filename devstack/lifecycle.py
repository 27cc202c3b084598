"""What every runnable piece of the local stack shares: start/stop as a context manager, and for
the ones that are a single child process (livekit-server, Redis), how it is stopped or killed."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self

__all__ = ["ChildProcess", "Lifecycle"]


class Lifecycle:
    """`with thing:` starts it and stops it on the way out, whatever happened."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ChildProcess(Lifecycle):
    """A server run as one child process (`self._proc`, set by `start`)."""

    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
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
        """SIGKILL: the process dying, not shutting down."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

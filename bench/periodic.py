"""A reading taken every few seconds off the event loop while a benchmark runs."""

from __future__ import annotations

import asyncio

__all__ = ["Periodic"]


class Periodic:
    """Runs `tick` in a worker thread every `interval` seconds between `start` and `stop`.

    Readings of /proc (psutil) block; a thread keeps them off the loop the measured clients
    share, so sampling does not delay what it measures."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def tick(self) -> object:
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.tick)
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=type(self).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

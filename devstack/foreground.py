"""`make dev` and `make dev-cluster` in the foreground: start, show where things are, run until
Ctrl-C (or SIGTERM, SIGHUP) or until a service dies, then stop everything."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable

from .lifecycle import Lifecycle
from .service import Service

__all__ = ["run_until_stopped"]

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run_until_stopped(
    thing: Lifecycle, services: Callable[[], Iterable[Service]], banner: str
) -> None:
    """Start `thing`, print `banner`, and watch `services` until a stop signal or until one of
    them is no longer running; `thing` is stopped whatever happens."""
    stopping = threading.Event()
    for sig in _STOP_SIGNALS:
        signal.signal(sig, lambda *_: stopping.set())
    thing.start()  # stops what it started if it fails
    try:
        # Inside the try: a closed stdout must not leave the services running.
        print(banner, flush=True)
        while not stopping.wait(0.5):
            dead = [service for service in services() if not service.running]
            for service in dead:
                logger.error("%s stopped unexpectedly; see %s", service.name, service.log_path)
            if dead:
                break
    finally:
        logger.info("stopping")
        thing.stop()

"""An ASGI app served by uvicorn in a thread on a free loopback port, as in production (real
HTTP and WebSocket), for unit tests that need a real socket but no other process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from devstack.ports import free_tcp_port

__all__ = ["serving"]


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # running in a thread
        pass


@contextmanager
def serving(app: Any, **config: Any) -> Iterator[str]:
    """`app` served until the block ends; yields its base URL (`http://127.0.0.1:<port>`)."""
    port = free_tcp_port()
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)

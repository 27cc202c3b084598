"""Session-wide fixtures: real servers on free loopback ports, never colliding with a dev stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.livekit_server import LiveKitServer, LiveKitServerConfig


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    """A real livekit-server on loopback, own ports and a generated 32+ character secret."""
    with LiveKitServer(LiveKitServerConfig.on_free_ports()) as server:
        yield server

"""Session-wide fixtures: real servers on free loopback ports, never colliding with a dev stack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.livekit_server import LiveKitServer, LiveKitServerConfig
from devstack.stack import Stack, StackConfig


@pytest.fixture(scope="session")
def livekit_server() -> Iterator[LiveKitServer]:
    """A real livekit-server on loopback, own ports and a generated 32+ character secret."""
    with LiveKitServer(LiveKitServerConfig.on_free_ports()) as server:
        yield server


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The whole stack (livekit-server, stand-in, token server, agent, playground) on free ports.

    Shared by the end-to-end tests of a run; tests that break things (restarts, kills, faults)
    build their own `Stack` instead.
    """
    with Stack(
        StackConfig(env={"RATE_LIMIT_PER_MINUTE": "100000", "STANDIN_ENABLE_FAULTS": "1"})
    ) as s:
        yield s

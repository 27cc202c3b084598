"""Session-wide fixtures: real servers on free loopback ports, never colliding with a dev stack."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devstack.livekit_server import LiveKitServer, LiveKitServerConfig
from devstack.loopback import SEALED_ADDRESS_VAR, SocketWatch
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


# --- the network check of the live tiers -------------------------------------------------------
_LIVE_TIERS = ("e2e", "browser")


@pytest.fixture(autouse=True)
def _live_tests_are_watched(request: pytest.FixtureRequest) -> None:
    """Every live test (folder e2e/ or browser/) runs under the session's socket watch."""
    if request.path.parent.name in _LIVE_TIERS:
        request.getfixturevalue("sockets_stay_on_loopback")


@pytest.fixture(scope="session")
def sockets_stay_on_loopback() -> Iterator[SocketWatch]:
    """Samples every TCP and UDP socket of this process and all its descendants (every stack,
    agent job, simulated user and browser the tests start) for the whole live run; fails the
    run if one was ever bound or connected off loopback (and the sealed namespace's address).

    On the host network (`SEALED_NETWORK=off`) libwebrtc binds its UDP sockets to the machine's
    addresses, so only connected peers are checked there, and the run says so.
    """
    sealed = os.environ.get(SEALED_ADDRESS_VAR) is not None
    if not sealed and os.environ.get("SEALED_NETWORK") != "off":
        pytest.fail(
            "live tests run in the sealed network: `make e2e` / `make test`, or "
            "`scripts/sealed.sh .venv/bin/python -m pytest ...`; SEALED_NETWORK=off runs them "
            "on the host network with a weaker socket check"
        )
    with SocketWatch(lambda: [os.getpid()], bound=sealed) as watch:
        yield watch
    assert watch.samples > 1, "the socket watch never sampled"
    assert not watch.problems, "sockets off loopback:\n" + "\n".join(sorted(watch.problems))

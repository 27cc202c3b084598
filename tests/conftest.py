"""Session-wide fixtures: real servers on free loopback ports, never colliding with a dev stack."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.livekit_server import LiveKitServer, LiveKitServerConfig
from devstack.loopback import SEALED_ADDRESS_VAR, SocketWatch
from devstack.stack import Stack, StackConfig

_TESTS = Path(__file__).parent
# Each folder is one tier (`make unit`, `make e2e`, `make browser`), selected by its marker.
TIERS = ("unit", "e2e", "browser")
# Fixtures of the live tiers (servers, the socket watch): a unit test must never ask for one.
SERVER_FIXTURES = frozenset({"stack", "livekit_server", "sockets_stay_on_loopback"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its folder's tier; refuse a test marked for another tier.

    So `-m unit` selects exactly tests/unit, whatever a module remembers to declare, and a unit
    test cannot quietly start livekit-server.
    """
    problems = []
    for item in items:
        folder = item.path.relative_to(_TESTS).parts[0]
        if folder not in TIERS:
            problems.append(f"{item.nodeid}: tests live in one of {', '.join(TIERS)}")
            continue
        others = {m.name for m in item.iter_markers()} & set(TIERS) - {folder}
        if others:
            problems.append(f"{item.nodeid}: in tests/{folder} but marked {sorted(others)}")
        if folder == "unit" and SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            problems.append(f"{item.nodeid}: a unit test uses a server fixture")
        item.add_marker(getattr(pytest.mark, folder))
    if problems:
        raise pytest.UsageError("test tiers:\n  " + "\n  ".join(problems))


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
def _live_tests_are_watched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every live test (folder e2e/ or browser/) runs under the session's socket watch; it
    samples only while such a test runs (unit tests may open sockets of any kind on purpose)."""
    if request.path.parent.name not in _LIVE_TIERS:
        yield
        return
    watch: SocketWatch = request.getfixturevalue("sockets_stay_on_loopback")
    watch.resume()
    yield
    watch.pause()


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

"""Session-wide fixtures: real servers on free loopback ports, never colliding with a dev stack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.livekit_server import LiveKitServer, LiveKitServerConfig
from devstack.stack import Stack, StackConfig

_TESTS = Path(__file__).parent
# Each folder is one tier (`make unit`, `make e2e`, `make browser`), selected by its marker.
TIERS = ("unit", "e2e", "browser")
# Fixtures that start servers: a unit test must never ask for one.
SERVER_FIXTURES = frozenset({"stack", "livekit_server"})


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

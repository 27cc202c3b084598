"""Stacks for the benchmarks: extra agent workers next to a devstack, and direct tokens."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from livekit.api import AccessToken, RoomAgentDispatch, RoomConfiguration

from common.metadata import Faq, SessionMetadata
from devstack.paths import REPO_ROOT
from devstack.ports import free_tcp_port
from devstack.service import Service, log_contains
from devstack.stack import Stack
from simuser import SimulatedUser
from simuser.token import new_identity, new_room_name
from token_server.tokens import build_grants

from .common import FAQS

__all__ = ["bench_agent_service", "direct_user"]


def bench_agent_service(
    stack: Stack,
    which: str,
    *,
    agent_name: str,
    events_dir: Path,
    env: dict[str, str] | None = None,
) -> Service:
    """`python -m bench.agents <which> start` against `stack`'s livekit-server and stand-in."""
    service_env = dict(stack.env)
    service_env.update(
        {
            "AGENT_NAME": agent_name,
            "AGENT_HTTP_PORT": str(free_tcp_port()),
            "BENCH_EVENTS_DIR": str(events_dir),
            **(env or {}),
        }
    )
    return Service(
        f"bench-{which}",
        [sys.executable, "-m", "bench.agents", which, "start"],
        env=service_env,
        cwd=REPO_ROOT,
        log_path=stack.config.log_dir / f"bench-{which}-{stack.config.livekit.port}.log",
        ready=log_contains("registered worker"),
    )


def direct_user(stack: Stack, agent_name: str, faqs: Sequence[Faq] = FAQS) -> SimulatedUser:
    """A user with a token minted here (as the token server does) dispatching `agent_name`."""
    # The token server creates the room with the dispatch (token_server.rooms); a benchmark's
    # own agents are dispatched by the token's room configuration instead, as before.
    metadata = SessionMetadata(language="en", faqs=list(faqs)).to_json()
    token = (
        AccessToken(stack.api_key, stack.api_secret)
        .with_identity(new_identity())
        .with_metadata(metadata)
        .with_grants(build_grants(new_room_name()))
        .with_room_config(
            RoomConfiguration(agents=[RoomAgentDispatch(agent_name=agent_name, metadata=metadata)])
        )
        .with_ttl(timedelta(hours=1))
        .to_jwt()
    )
    return SimulatedUser(stack.livekit_url, token)

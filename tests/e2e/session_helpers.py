"""Rooms and participants for the attack tests (`test_security_session.py`, `test_security_access`).

The token server's rooms admit one user besides the agent, so a stranger cannot even join. To
check the defences behind that one (the agent's caller check, simuser and the page ignoring
state calls and transcripts from anyone but the agent), `open_uncapped_session` creates a room
the way a deployment without the cap would: the agent dispatched, no participant limit.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import psutil
from livekit import api

from common.metadata import Faq, SessionMetadata
from devstack.stack import Stack
from token_server.tokens import build_grants

__all__ = [
    "agent_job_rss",
    "livekit_api",
    "mint",
    "new_room",
    "open_uncapped_session",
]


def new_room() -> str:
    return f"avatar-{secrets.token_hex(6)}"


def mint(
    stack: Stack,
    room: str,
    identity: str,
    *,
    metadata: SessionMetadata | None = None,
    ttl: timedelta = timedelta(minutes=5),
) -> str:
    """A valid join token for `room` signed with the API secret, with the token server's grants
    (someone who has the secret, or a second token server without our rules)."""
    token = (
        api.AccessToken(stack.api_key, stack.api_secret)
        .with_identity(identity)
        .with_grants(build_grants(room))
        .with_ttl(ttl)
    )
    if metadata is not None:
        token = token.with_metadata(metadata.to_json())
    return token.to_jwt()


@contextlib.asynccontextmanager
async def livekit_api(stack: Stack) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(stack.livekit_url, stack.api_key, stack.api_secret)
    try:
        yield client
    finally:
        await client.aclose()


async def open_uncapped_session(stack: Stack, faqs: list[Faq], user_identity: str) -> str:
    """Create a room with the agent dispatched and no participant cap; return the user's token."""
    metadata = SessionMetadata(language="en", faqs=faqs)
    room = new_room()
    async with livekit_api(stack) as lk:
        await lk.room.create_room(
            api.CreateRoomRequest(
                name=room,
                departure_timeout=10,
                agents=[
                    api.RoomAgentDispatch(
                        agent_name=stack.config.agent_name, metadata=metadata.to_json()
                    )
                ],
            )
        )
    return mint(stack, room, user_identity, metadata=metadata)


def _job_processes(stack: Stack) -> Iterator[psutil.Process]:
    pid = stack.services["agent"].pid
    assert pid is not None
    yield from psutil.Process(pid).children(recursive=True)


def agent_job_rss(stack: Stack) -> int:
    """Resident memory of the worker's job processes together, in bytes."""
    total = 0
    for proc in _job_processes(stack):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            total += proc.memory_info().rss
    return total

"""Minting: a join token for one room, which the token server has created (see `rooms`).

The token carries no room configuration: a room configuration re-creates the room and dispatches
another agent whenever the token is used again after the room closed (`token_server.rooms`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from livekit.api import AccessToken, VideoGrants

from common.metadata import SessionMetadata

__all__ = ["PUBLISH_SOURCES", "IssuedToken", "build_grants", "mint_token"]

# The browser only ever sends the user's voice.
PUBLISH_SOURCES = ["microphone"]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    room: str
    identity: str
    expires_at: datetime


def build_grants(room: str) -> VideoGrants:
    """Join `room` only; publish the microphone; subscribe; data (RPC needs it); nothing else."""
    return VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=list(PUBLISH_SOURCES),
        can_subscribe=True,
        can_publish_data=True,
        can_update_own_metadata=False,
    )


def mint_token(
    *,
    api_key: str,
    api_secret: str,
    room: str,
    identity: str,
    metadata: SessionMetadata,
    ttl: timedelta,
) -> IssuedToken:
    token = (
        AccessToken(api_key, api_secret)
        .with_identity(identity)
        .with_metadata(metadata.to_json())
        .with_grants(build_grants(room))
        .with_ttl(ttl)
        .to_jwt()
    )
    # Report the exact `exp` the SDK wrote rather than a second clock reading.
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    return IssuedToken(
        token=token,
        room=room,
        identity=identity,
        expires_at=datetime.fromtimestamp(int(exp), tz=UTC),
    )

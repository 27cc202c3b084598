"""Request and response bodies of `POST /api/token`; the metadata model is the shared one."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.metadata import SessionMetadata
from common.protocol import AGENT_IDENTITY_PREFIX, is_agent_identity

__all__ = [
    "IDENTITY_PATTERN",
    "MAX_IDENTITY_CHARS",
    "MAX_ROOM_ID_CHARS",
    "ROOM_ID_PATTERN",
    "ErrorResponse",
    "HealthResponse",
    "TokenRequest",
    "TokenResponse",
    "room_error",
    "room_pattern",
]

MAX_ROOM_ID_CHARS = 64
ROOM_ID_PATTERN = rf"[A-Za-z0-9_-]{{1,{MAX_ROOM_ID_CHARS}}}"
MAX_IDENTITY_CHARS = 128
# Safe in logs, URLs and the frontend's `startsWith('agent')` lookup: no spaces or controls.
IDENTITY_PATTERN = rf"^[A-Za-z0-9_.@:+=-]{{1,{MAX_IDENTITY_CHARS}}}$"
# Generous bound; the exact `<prefix>-<id>` rule needs the configured prefix (see room_error).
_MAX_ROOM_CHARS = 32 + 1 + MAX_ROOM_ID_CHARS


def room_pattern(prefix: str) -> str:
    # Not re.escape'd: prefixes are [A-Za-z0-9_-] (settings), and the pattern also goes into the
    # OpenAPI document, where JSON Schema regexes must not carry Python-only escapes like `\-`.
    if not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
        raise ValueError(f"invalid room prefix {prefix!r}")
    return rf"^{prefix}-{ROOM_ID_PATTERN}$"


def room_error(room: str, prefix: str) -> str | None:
    """Why `room` is not `<prefix>-<id>`, or None when it is."""
    if re.fullmatch(room_pattern(prefix), room):
        return None
    return (
        f"room must be '{prefix}-<id>' where <id> is 1-{MAX_ROOM_ID_CHARS} characters "
        "of A-Z a-z 0-9 _ -"
    )


class TokenRequest(BaseModel):
    """`{room, identity, metadata?}` as in the frontend contract; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    room: str = Field(
        min_length=1,
        max_length=_MAX_ROOM_CHARS,
        description="`<prefix>-<id>`; the prefix is ROOM_PREFIX (default `avatar`)",
        examples=["avatar-a1b2c3d4"],
    )
    identity: str = Field(
        pattern=IDENTITY_PATTERN,
        description=(
            f"1-{MAX_IDENTITY_CHARS} of A-Z a-z 0-9 _ . @ : + = -; "
            f"must not start with '{AGENT_IDENTITY_PREFIX}' (any case)"
        ),
        examples=["user-xyz123"],
    )
    metadata: SessionMetadata | None = Field(
        default=None, description="absent or null: the default language and no FAQs"
    )

    @field_validator("identity")
    @classmethod
    def _not_agent(cls, value: str) -> str:
        if is_agent_identity(value):
            raise ValueError(
                f"identities starting with '{AGENT_IDENTITY_PREFIX}' are reserved for the agent"
            )
        return value

    @property
    def session_metadata(self) -> SessionMetadata:
        return self.metadata or SessionMetadata()


class TokenResponse(BaseModel):
    token: str = Field(description="LiveKit join token (JWT)")
    url: str = Field(description="LiveKit server URL to connect to")
    room: str
    identity: str
    expires_at: datetime = Field(description="token expiry, ISO-8601 UTC")


class HealthResponse(BaseModel):
    status: str = "ok"


class ErrorResponse(BaseModel):
    """Every non-422 error body."""

    detail: str

"""Ask the token server for a room token, as the browser does (`POST /api/token`)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime

import httpx
from pydantic import BaseModel, ConfigDict

from common.metadata import Faq, SessionMetadata
from common.protocol import is_agent_identity

__all__ = [
    "DEFAULT_ROOM_PREFIX",
    "TokenGrant",
    "TokenRequestError",
    "fetch_token",
    "new_identity",
    "new_room_name",
]

logger = logging.getLogger(__name__)

DEFAULT_ROOM_PREFIX = "avatar"


class TokenGrant(BaseModel):
    """The token server's answer."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    token: str
    url: str
    room: str
    identity: str
    expires_at: datetime


class TokenRequestError(RuntimeError):
    """The token server refused the request or answered something unexpected."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"token server answered {status}: {detail}")
        self.status = status
        self.detail = detail


def new_room_name(prefix: str = DEFAULT_ROOM_PREFIX) -> str:
    """A fresh room per session (an agent is only dispatched to new rooms)."""
    return f"{prefix}-{secrets.token_hex(4)}"


def new_identity() -> str:
    return f"user-{secrets.token_hex(4)}"


async def fetch_token(
    token_url: str,
    *,
    room: str | None = None,
    identity: str | None = None,
    language: str = "en",
    faqs: Sequence[Faq] = (),
    room_prefix: str = DEFAULT_ROOM_PREFIX,
    timeout: float = 10.0,  # noqa: ASYNC109 - the HTTP client's timeout
    client: httpx.AsyncClient | None = None,
) -> TokenGrant:
    """POST `{room, identity, metadata: {language, faqs}}` and return the parsed grant."""
    identity = identity or new_identity()
    if is_agent_identity(identity):
        raise ValueError(f"identity {identity!r} is reserved for the agent")
    metadata = SessionMetadata(language=language, faqs=list(faqs))
    body = {
        "room": room or new_room_name(room_prefix),
        "identity": identity,
        "metadata": metadata.model_dump(mode="json"),
    }
    owned = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    try:
        resp = await http.post(token_url, json=body)
    finally:
        if owned:
            await http.aclose()
    if resp.status_code != 200:
        raise TokenRequestError(resp.status_code, resp.text[:500])
    grant = TokenGrant.model_validate_json(resp.content)
    logger.info("token for %s in room %s (server %s)", grant.identity, grant.room, grant.url)
    return grant

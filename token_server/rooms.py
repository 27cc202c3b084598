"""One session per room: the token server creates each room itself, once, with the agent in it.

Why the token server creates the room instead of the token's room configuration: a token that
carries a room configuration re-creates its room, and dispatches another agent, every time it is
used while it is valid, so one token could start many sessions. Here the room is created through
livekit-server's RoomService with the agent dispatch and the caps below, and the token carries no
room configuration: used again after the room closed it finds no room (refused when the server's
`room.auto_create` is off, as in the dev stack; otherwise an empty room with no agent).

A name that already exists on the server is refused (409): joining a running session, under the
user's identity or another, is how a stranger would take it over.
"""

from __future__ import annotations

import logging
from typing import Protocol

import aiohttp
from livekit import api

__all__ = [
    "ROOM_DEPARTURE_TIMEOUT_SECONDS",
    "ROOM_EMPTY_TIMEOUT_SECONDS",
    "ROOM_MAX_PARTICIPANTS",
    "LiveKitRooms",
    "RoomDirectory",
    "RoomExists",
    "RoomServiceUnavailable",
    "SessionRooms",
    "build_create_request",
]

logger = logging.getLogger(__name__)

# livekit-server counts only non-agent participants against `max_participants` (agents and
# egress are "dependent" participants): 1 is the user, and the agent comes on top. A third
# party (another identity) is refused by the server even with a valid token.
ROOM_MAX_PARTICIPANTS = 1
# Seconds the room stays open when nobody ever joins (the agent joins at once, so this only
# matters when no agent is running).
ROOM_EMPTY_TIMEOUT_SECONDS = 60
# Seconds the room stays open after the last participant left: short, so a closed session is
# gone before its token could be used again.
ROOM_DEPARTURE_TIMEOUT_SECONDS = 10
_REQUEST_TIMEOUT_SECONDS = 5.0


class RoomExists(Exception):
    """The room is already on the server, or another request is creating it right now."""


class RoomServiceUnavailable(Exception):
    """livekit-server's RoomService could not be reached or refused the request."""


class RoomDirectory(Protocol):
    """The two RoomService calls the token server needs; `LiveKitRooms` in production."""

    async def exists(self, room: str) -> bool: ...

    async def create(self, request: api.CreateRoomRequest) -> None: ...

    async def aclose(self) -> None: ...


def build_create_request(
    room: str, *, agent_name: str, metadata_json: str
) -> api.CreateRoomRequest:
    # Dispatch metadata reaches the agent at job start, before participant metadata may have.
    return api.CreateRoomRequest(
        name=room,
        empty_timeout=ROOM_EMPTY_TIMEOUT_SECONDS,
        departure_timeout=ROOM_DEPARTURE_TIMEOUT_SECONDS,
        max_participants=ROOM_MAX_PARTICIPANTS,
        agents=[api.RoomAgentDispatch(agent_name=agent_name, metadata=metadata_json)],
    )


class LiveKitRooms:
    """RoomService over HTTP; the client is made on first use (it needs the running loop)."""

    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._client: api.LiveKitAPI | None = None

    def _api(self) -> api.LiveKitAPI:
        if self._client is None:
            self._client = api.LiveKitAPI(
                self._url,
                self._api_key,
                self._api_secret,
                timeout=aiohttp.ClientTimeout(total=_REQUEST_TIMEOUT_SECONDS),
            )
        return self._client

    async def exists(self, room: str) -> bool:
        try:
            listed = await self._api().room.list_rooms(api.ListRoomsRequest(names=[room]))
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise RoomServiceUnavailable(f"listing rooms failed: {exc}") from exc
        return any(r.name == room for r in listed.rooms)

    async def create(self, request: api.CreateRoomRequest) -> None:
        try:
            await self._api().room.create_room(request)
        except (api.TwirpError, aiohttp.ClientError, TimeoutError) as exc:
            raise RoomServiceUnavailable(f"creating the room failed: {exc}") from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class SessionRooms:
    """Check-then-create, with concurrent requests for one name serialised in this process.

    CreateRoom on an existing name returns the existing room, so two requests racing between the
    check and the create would both succeed; the pending set closes that race for one token
    server. Several replicas share no such set: the window is one RoomService round trip.
    """

    def __init__(self, directory: RoomDirectory) -> None:
        self.directory = directory
        self._pending: set[str] = set()

    async def open_session(self, request: api.CreateRoomRequest) -> None:
        """Create `request.name` with the agent in it; `RoomExists` when it is already there."""
        room = request.name
        if room in self._pending:  # no await between this check and the add: no race
            raise RoomExists(room)
        self._pending.add(room)
        try:
            if await self.directory.exists(room):
                raise RoomExists(room)
            await self.directory.create(request)
        finally:
            self._pending.discard(room)

    async def aclose(self) -> None:
        await self.directory.aclose()

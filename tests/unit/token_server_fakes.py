"""A hand-written stand-in for livekit-server's RoomService, for the token server's unit tests."""

from __future__ import annotations

from collections.abc import Iterable

from livekit import api

from token_server.rooms import RoomServiceUnavailable


class FakeRooms:
    """Rooms in memory. `remember=False`: every name stays free (tests about other rules)."""

    def __init__(self, existing: Iterable[str] = (), *, remember: bool = False) -> None:
        self.existing = set(existing)
        self.remember = remember
        self.created: list[api.CreateRoomRequest] = []
        self.unavailable = False
        self.closed = False

    async def exists(self, room: str) -> bool:
        if self.unavailable:
            raise RoomServiceUnavailable("connection refused")
        return room in self.existing

    async def create(self, request: api.CreateRoomRequest) -> None:
        if self.unavailable:
            raise RoomServiceUnavailable("connection refused")
        self.created.append(request)
        if self.remember:
            self.existing.add(request.name)

    async def aclose(self) -> None:
        self.closed = True

"""token_server.rooms: check-then-create, one request per room name at a time."""

from __future__ import annotations

import asyncio

import pytest
from livekit import api

from token_server.rooms import RoomExists, SessionRooms, build_create_request

pytestmark = pytest.mark.unit


class SlowRooms:
    """A RoomService whose lookup waits until the test lets it go (the race window)."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.created: list[str] = []

    async def exists(self, room: str) -> bool:
        await self.go.wait()
        return room in self.created

    async def create(self, request: api.CreateRoomRequest) -> None:
        self.created.append(request.name)

    async def aclose(self) -> None:
        pass


def _request(room: str) -> api.CreateRoomRequest:
    return build_create_request(room, agent_name="a", metadata_json="{}")


async def test_two_requests_racing_for_one_room_create_it_once() -> None:
    directory = SlowRooms()
    rooms = SessionRooms(directory)
    first = asyncio.create_task(rooms.open_session(_request("avatar-1")))
    await asyncio.sleep(0)  # the first is now between its check and its create
    with pytest.raises(RoomExists):  # at once: it does not wait for the first one's lookup
        await asyncio.wait_for(rooms.open_session(_request("avatar-1")), timeout=10)
    directory.go.set()
    await first
    assert directory.created == ["avatar-1"]
    with pytest.raises(RoomExists):
        await rooms.open_session(_request("avatar-1"))


async def test_rooms_of_other_names_are_independent() -> None:
    directory = SlowRooms()
    directory.go.set()
    rooms = SessionRooms(directory)
    await rooms.open_session(_request("avatar-2"))
    await rooms.open_session(_request("avatar-3"))
    assert directory.created == ["avatar-2", "avatar-3"]

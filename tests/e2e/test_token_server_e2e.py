"""End to end: tokens from the token server against the real loopback livekit-server.

Every token is minted over real HTTP by a running `python -m token_server` (uvicorn) and joins
with the `livekit` Python SDK; the server reports the identity,
the metadata, the microphone-only permission and the agent dispatch; tampered, expired and
re-targeted tokens are refused or confined to their own room.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from livekit import api, rtc
from livekit.protocol.rtc import JoinRequest, SignalResponse, WrappedJoinRequest

from common.metadata import SessionMetadata
from devstack.livekit_server import LiveKitServer
from devstack.stack import Stack, StackConfig
from token_server.tokens import mint_token

pytestmark = pytest.mark.e2e

METADATA = {"language": "es", "faqs": [{"question": "¿Horario?", "answer": "De 9 a 17."}]}


def _room() -> str:
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def http(plain_token_server: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the real `python -m token_server` process (uvicorn, real HTTP)."""
    async with httpx.AsyncClient(base_url=plain_token_server, timeout=10) as client:
        yield client


@pytest.fixture
async def lkapi(livekit_server: LiveKitServer) -> AsyncIterator[api.LiveKitAPI]:
    client = api.LiveKitAPI(
        livekit_server.config.http_url,
        livekit_server.config.api_key,
        livekit_server.config.api_secret,
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def rooms() -> AsyncIterator[list[rtc.Room]]:
    """Rooms a test connects; all disconnected at the end whatever happened."""
    opened: list[rtc.Room] = []
    try:
        yield opened
    finally:
        for room in opened:
            await room.disconnect()


async def _mint(http: httpx.AsyncClient, room: str, identity: str, **extra: Any) -> dict[str, Any]:
    response = await http.post("/api/token", json={"room": room, "identity": identity, **extra})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _connect(rooms: list[rtc.Room], url: str, token: str) -> rtc.Room:
    room = rtc.Room()
    rooms.append(room)
    await asyncio.wait_for(room.connect(url, token), timeout=20)
    return room


async def _participants(lkapi: api.LiveKitAPI, room: str) -> list[api.ParticipantInfo]:
    response = await lkapi.room.list_participants(api.ListParticipantsRequest(room=room))
    return list(response.participants)


async def _validate(server: LiveKitServer, token: str, path: str = "/rtc", **params: str) -> int:
    """The server's own pre-join check (`<path>/validate`), as browsers use on a failed join."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{server.config.http_url}{path}/validate",
            params={"access_token": token, **params},
        ) as response,
    ):
        return response.status


def _join_request(**fields: Any) -> str:
    """A v1 signalling `join_request` parameter carrying client-chosen fields."""
    inner = JoinRequest(**fields).SerializeToString()
    wrapped = WrappedJoinRequest(join_request=inner).SerializeToString()
    return base64.urlsafe_b64encode(wrapped).decode()


def _tamper(token: str, **changes: Any) -> str:
    """Edit the JWT payload and keep the original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    for key, value in changes.items():
        target = claims["video"] if key == "room" else claims
        target[key] = value
    raw = json.dumps(claims, separators=(",", ":")).encode()
    return ".".join([header, base64.urlsafe_b64encode(raw).rstrip(b"=").decode(), signature])


async def test_minted_token_joins_with_identity_metadata_and_dispatch(
    livekit_server: LiveKitServer,
    http: httpx.AsyncClient,
    lkapi: api.LiveKitAPI,
    rooms: list[rtc.Room],
) -> None:
    room_name = _room()
    body = await _mint(http, room_name, "user-e2e", metadata=METADATA)
    assert body["url"] == livekit_server.config.url
    expected = SessionMetadata.model_validate(METADATA).to_json()

    room = await _connect(rooms, body["url"], body["token"])
    assert room.name == room_name
    assert room.local_participant.identity == "user-e2e"
    assert room.local_participant.metadata == expected

    [info] = await _participants(lkapi, room_name)
    assert info.identity == "user-e2e"
    assert info.metadata == expected
    assert list(info.permission.can_publish_sources) == [api.TrackSource.MICROPHONE]
    assert info.permission.can_subscribe
    assert info.permission.can_publish_data
    assert not info.permission.can_update_metadata

    dispatches = await lkapi.agent_dispatch.list_dispatch(room_name)
    assert [(d.agent_name, d.metadata) for d in dispatches] == [("e2e-agent", expected)]


async def test_second_token_for_a_room_is_409_whatever_the_identity(
    http: httpx.AsyncClient, lkapi: api.LiveKitAPI, rooms: list[rtc.Room]
) -> None:
    room_name = _room()
    first = await _mint(http, room_name, "user-one", metadata={"language": "fr"})
    for identity in ("user-one", "user-two"):
        response = await http.post("/api/token", json={"room": room_name, "identity": identity})
        assert response.status_code == 409, response.text
        assert room_name in response.json()["detail"]
    room = await _connect(rooms, first["url"], first["token"])
    assert room.local_participant.identity == "user-one"
    assert len(await lkapi.agent_dispatch.list_dispatch(room_name)) == 1


async def test_client_cannot_override_token_metadata(
    livekit_server: LiveKitServer, http: httpx.AsyncClient
) -> None:
    token = (await _mint(http, _room(), "user-meta"))["token"]
    assert await _validate(livekit_server, token) == 200
    plain = _join_request(connection_settings={"auto_subscribe": True})
    assert await _validate(livekit_server, token, "/rtc/v1", join_request=plain) == 200
    # A join may carry its own metadata or attributes; without can_update_own_metadata the server
    # refuses them, so what the token server validated is what the agent gets.
    override = _join_request(metadata='{"language":"xx"}')
    assert await _validate(livekit_server, token, "/rtc/v1", join_request=override) == 401
    attributes = base64.urlsafe_b64encode(b'{"role":"admin"}').decode()
    assert await _validate(livekit_server, token, attributes=attributes) == 401


@pytest.mark.parametrize(
    "changes",
    [{"sub": "agent-impostor"}, {"room": "e2e-other"}, {"metadata": '{"language":"xx"}'}],
)
async def test_tampered_token_refused(
    livekit_server: LiveKitServer,
    http: httpx.AsyncClient,
    lkapi: api.LiveKitAPI,
    rooms: list[rtc.Room],
    changes: dict[str, str],
) -> None:
    room_name = _room()
    token = _tamper((await _mint(http, room_name, "user-tamper"))["token"], **changes)
    assert await _validate(livekit_server, token) == 401
    with pytest.raises(rtc.ConnectError):
        await _connect(rooms, livekit_server.config.url, token)
    for name in (room_name, "e2e-other"):
        assert await _participants(lkapi, name) == []


async def test_token_signed_with_another_secret_refused(
    livekit_server: LiveKitServer, rooms: list[rtc.Room]
) -> None:
    forged = mint_token(
        api_key=livekit_server.config.api_key,
        api_secret="not-the-server-secret-0123456789abcdef",
        room=_room(),
        identity="user-forged",
        metadata=SessionMetadata(),
        ttl=timedelta(minutes=5),
    )
    assert await _validate(livekit_server, forged.token) == 401
    with pytest.raises(rtc.ConnectError):
        await _connect(rooms, livekit_server.config.url, forged.token)


async def test_expired_token_refused(livekit_server: LiveKitServer, rooms: list[rtc.Room]) -> None:
    # Same code path as the route, with a TTL in the past (the route's minimum is 60 s).
    expired = mint_token(
        api_key=livekit_server.config.api_key,
        api_secret=livekit_server.config.api_secret,
        room=_room(),
        identity="user-expired",
        metadata=SessionMetadata(),
        ttl=timedelta(minutes=-10),
    )
    assert await _validate(livekit_server, expired.token) == 401
    with pytest.raises(rtc.ConnectError):
        await _connect(rooms, livekit_server.config.url, expired.token)


async def test_token_for_room_a_cannot_join_room_b(
    livekit_server: LiveKitServer,
    http: httpx.AsyncClient,
    lkapi: api.LiveKitAPI,
    rooms: list[rtc.Room],
) -> None:
    room_a, room_b = _room(), _room()
    token = (await _mint(http, room_a, "user-a"))["token"]
    # Ask the signalling endpoint for room B explicitly: livekit-server takes the room from the
    # signed token and ignores the request's `room`, so the join lands in A.
    url = f"{livekit_server.config.url}/rtc"
    params = {"access_token": token, "room": room_b, "protocol": "16", "auto_subscribe": "0"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, params=params, timeout=aiohttp.ClientWSTimeout(ws_close=5)) as ws,
    ):
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        assert message.type == aiohttp.WSMsgType.BINARY
        first = SignalResponse.FromString(message.data)
        assert first.WhichOneof("message") == "join"
        assert first.join.room.name == room_a
        assert first.join.participant.identity == "user-a"
        assert await _participants(lkapi, room_b) == []
    # And the SDK, which can only hand over the token, joins A as well.
    room = await _connect(rooms, livekit_server.config.url, token)
    assert room.name == room_a
    assert await _participants(lkapi, room_b) == []


# --- the real process: `python -m token_server` with env settings ------------------------------


@contextmanager
def _token_server(livekit_server: LiveKitServer, log_dir: Path, **settings: str) -> Iterator[str]:
    """`python -m token_server` as the stack runs it, on a free port with env `settings`;
    yields its base URL and checks, once it has stopped, that no secret reached its log."""
    stack = Stack(
        StackConfig(
            livekit=livekit_server.config,
            services=("token_server",),
            use_standin=False,
            run_livekit=False,
            env=settings,
            log_dir=log_dir,
        )
    )
    with stack:
        yield stack.token_url.removesuffix("/api/token")
    text = stack.services["token_server"].log_path.read_text()
    assert livekit_server.config.api_secret not in text
    for value in settings.values():
        if "key" in value:
            assert value not in text


@pytest.fixture(scope="module")
def plain_token_server(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The token server as the tests above use it: prefix `e2e`, agent `e2e-agent`, no key."""
    with _token_server(
        livekit_server,
        tmp_path_factory.mktemp("plain-token-server"),
        ROOM_PREFIX="e2e",
        AGENT_NAME="e2e-agent",
        RATE_LIMIT_PER_MINUTE="1000",
    ) as base:
        yield base


@pytest.fixture(scope="module")
def token_server_process(
    livekit_server: LiveKitServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Behind a shared key, as a production deployment runs it."""
    with _token_server(
        livekit_server,
        tmp_path_factory.mktemp("keyed-token-server"),
        ROOM_PREFIX="proc",
        TOKEN_SERVER_API_KEY="e2e-shared-key-value",
    ) as base:
        yield base


async def test_running_token_server_token_joins(
    token_server_process: str,
    livekit_server: LiveKitServer,
    lkapi: api.LiveKitAPI,
    rooms: list[rtc.Room],
) -> None:
    room_name = f"proc-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=token_server_process) as client:
        denied = await client.post("/api/token", json={"room": room_name, "identity": "u"})
        assert denied.status_code == 401
        response = await client.post(
            "/api/token",
            json={"room": room_name, "identity": "user-proc", "metadata": {"language": "de"}},
            headers={"X-API-Key": "e2e-shared-key-value"},
        )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    room = await _connect(rooms, body["url"], body["token"])
    assert room.local_participant.identity == "user-proc"
    [info] = await _participants(lkapi, room_name)
    assert json.loads(info.metadata) == {"language": "de", "faqs": []}

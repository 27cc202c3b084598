"""POST /api/token and GET /healthz through the ASGI app: rules, grants, errors, CORS, secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from livekit.api import TokenVerifier
from token_server_fakes import FakeRooms

from common.languages import supported_codes
from common.metadata import MAX_FAQ_SET_BYTES, MAX_FAQS, SessionMetadata
from token_server import create_app, load_settings
from token_server.app import MAX_BODY_BYTES
from token_server.rooms import ROOM_MAX_PARTICIPANTS
from token_server.settings import Settings

pytestmark = pytest.mark.unit

API_KEY = "unit-key"
SECRET = "unit-test-secret-0123456789-abcdefghij"
GOOD = {"room": "avatar-a1b2c3d4", "identity": "user-xyz123"}


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "livekit_api_key": API_KEY,
        "livekit_api_secret": SECRET,
        "livekit_url": "ws://127.0.0.1:7880",
        "room_prefix": "avatar",
        "rate_limit_per_minute": 10_000,
        "cors_origins": ["http://127.0.0.1:5173"],
        "token_server_api_key": None,
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(), rooms=FakeRooms())) as c:
        yield c


def post(client: TestClient, body: Any, **kwargs: Any) -> Any:
    return client.post("/api/token", json=body, **kwargs)


def errors_at(response: Any) -> list[list[Any]]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert all({"type", "loc", "msg"} <= set(e) for e in detail)
    return [e["loc"] for e in detail]


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, SECRET, algorithms=["HS256"], issuer=API_KEY)
    return decoded


# --- success ---------------------------------------------------------------------------------


def test_token_success_shape_and_no_store(client: TestClient) -> None:
    before = datetime.now(UTC)
    r = post(client, GOOD)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert set(body) == {"token", "url", "room", "identity", "expires_at"}
    assert body["url"] == "ws://127.0.0.1:7880"
    assert (body["room"], body["identity"]) == (GOOD["room"], GOOD["identity"])
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert expires.tzinfo is not None
    assert expires.utcoffset() == timedelta(0)
    assert timedelta(seconds=898) <= expires - before <= timedelta(seconds=902)
    assert claims_of(body["token"])["exp"] == int(expires.timestamp())


def test_token_grants_are_minimal(client: TestClient) -> None:
    claims = claims_of(post(client, GOOD).json()["token"])
    assert claims["sub"] == GOOD["identity"]
    video = claims["video"]
    assert video["roomJoin"] is True
    assert video["room"] == GOOD["room"]
    assert video["canPublishSources"] == ["microphone"]
    assert video["canSubscribe"] is True
    assert video["canPublishData"] is True
    assert video["canUpdateOwnMetadata"] is False
    for forbidden in ("roomAdmin", "roomCreate", "roomList", "roomRecord", "ingressAdmin"):
        assert not video.get(forbidden), forbidden
    assert not video.get("agent")
    assert not video.get("hidden")
    assert "sip" not in claims


def test_token_carries_metadata_and_no_room_config(client: TestClient) -> None:
    meta = {"language": "es_mx", "faqs": [{"question": "  ¿Horario? ", "answer": "9 a 5"}]}
    token = post(client, {**GOOD, "metadata": meta}).json()["token"]
    claims = TokenVerifier(API_KEY, SECRET).verify(token)
    expected = SessionMetadata.model_validate(meta).to_json()
    assert json.loads(expected) == {
        "language": "es-MX",
        "faqs": [{"question": "¿Horario?", "answer": "9 a 5"}],
    }
    assert claims.metadata == expected
    # A room configuration would re-create the room (and the agent) whenever the token is reused.
    assert claims.room_config is None


@pytest.mark.parametrize("body", [GOOD, {**GOOD, "metadata": None}])
def test_token_metadata_optional_defaults(body: dict[str, Any]) -> None:
    rooms = FakeRooms()
    with TestClient(create_app(make_settings(), rooms=rooms)) as c:
        token = post(c, body).json()["token"]
    claims = TokenVerifier(API_KEY, SECRET).verify(token)
    assert json.loads(claims.metadata) == {"language": "en", "faqs": []}
    assert rooms.created[0].agents[0].metadata == claims.metadata


def test_token_ttl_and_agent_name_from_settings() -> None:
    settings = make_settings(token_ttl_seconds=120, agent_name="custom-agent")
    rooms = FakeRooms()
    with TestClient(create_app(settings, rooms=rooms)) as c:
        body = post(c, GOOD).json()
    claims = claims_of(body["token"])
    assert claims["exp"] - claims["nbf"] == 120
    assert [d.agent_name for d in rooms.created[0].agents] == ["custom-agent"]


# --- one session per room ------------------------------------------------------------------------


def test_token_creates_the_room_with_the_agent_and_caps() -> None:
    meta = {"language": "fr", "faqs": [{"question": "Q?", "answer": "A."}]}
    rooms = FakeRooms()
    with TestClient(create_app(make_settings(), rooms=rooms)) as c:
        assert post(c, {**GOOD, "metadata": meta}).status_code == 200
    [request] = rooms.created
    assert request.name == GOOD["room"]
    assert [(d.agent_name, d.metadata) for d in request.agents] == [
        ("avatar-agent", SessionMetadata.model_validate(meta).to_json())
    ]
    # livekit-server does not count agents: 1 is the user, the agent comes on top.
    assert request.max_participants == ROOM_MAX_PARTICIPANTS == 1
    assert 0 < request.departure_timeout <= 30
    assert 0 < request.empty_timeout <= 120


def test_token_for_existing_room_is_409_naming_the_room() -> None:
    rooms = FakeRooms(existing={GOOD["room"]})
    with TestClient(create_app(make_settings(), rooms=rooms)) as c:
        r = post(c, GOOD)
        assert r.status_code == 409
        assert r.headers["cache-control"] == "no-store"
        assert GOOD["room"] in r.json()["detail"]
        assert "new room" in r.json()["detail"]
    assert rooms.created == []


def test_second_token_for_same_room_is_409_whatever_the_identity() -> None:
    rooms = FakeRooms(remember=True)
    with TestClient(create_app(make_settings(), rooms=rooms)) as c:
        assert post(c, GOOD).status_code == 200
        assert post(c, GOOD).status_code == 409
        assert post(c, {**GOOD, "identity": "someone-else"}).status_code == 409
    assert len(rooms.created) == 1


def test_room_service_down_is_503_and_no_token() -> None:
    rooms = FakeRooms()
    rooms.unavailable = True
    with TestClient(create_app(make_settings(), rooms=rooms)) as c:
        r = post(c, GOOD)
    assert r.status_code == 503
    assert "token" not in r.json()
    assert "LiveKit" in r.json()["detail"]


def test_room_directory_closed_on_shutdown() -> None:
    rooms = FakeRooms()
    with TestClient(create_app(make_settings(), rooms=rooms)):
        pass
    assert rooms.closed


def test_token_room_prefix_from_settings() -> None:
    with TestClient(
        create_app(make_settings(room_prefix=None, vite_room_prefix="vp"), rooms=FakeRooms())
    ) as c:
        assert post(c, {**GOOD, "room": "vp-1"}).status_code == 200
        assert errors_at(post(c, GOOD)) == [["body", "room"]]


# --- validation: 422 names the field ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"identity": "u"}, ["body", "room"]),
        ({"room": "avatar-1"}, ["body", "identity"]),
        ({**GOOD, "room": "avatar-"}, ["body", "room"]),
        ({**GOOD, "room": "other-abc"}, ["body", "room"]),
        ({**GOOD, "room": "avatarabc"}, ["body", "room"]),
        ({**GOOD, "room": "avatar-" + "a" * 65}, ["body", "room"]),
        ({**GOOD, "room": "avatar-a.b"}, ["body", "room"]),
        ({**GOOD, "room": 12}, ["body", "room"]),
        ({**GOOD, "identity": ""}, ["body", "identity"]),
        ({**GOOD, "identity": "a" * 129}, ["body", "identity"]),
        ({**GOOD, "identity": "user 1"}, ["body", "identity"]),
        ({**GOOD, "identity": "agent-x"}, ["body", "identity"]),
        ({**GOOD, "identity": "AGENT"}, ["body", "identity"]),
        ({**GOOD, "identity": "Agent_007"}, ["body", "identity"]),
        ({**GOOD, "metadata": {"language": "xx"}}, ["body", "metadata", "language"]),
        ({**GOOD, "metadata": {"language": ""}}, ["body", "metadata", "language"]),
        ({**GOOD, "metadata": "en"}, ["body", "metadata"]),
        ({**GOOD, "metadata": {"language": "en", "x": 1}}, ["body", "metadata", "x"]),
        ({**GOOD, "extra": True}, ["body", "extra"]),
        (
            {**GOOD, "metadata": {"faqs": [{"question": "   ", "answer": "a"}]}},
            ["body", "metadata", "faqs", 0, "question"],
        ),
        (
            {**GOOD, "metadata": {"faqs": [{"question": "q", "answer": "a" * 1501}]}},
            ["body", "metadata", "faqs", 0, "answer"],
        ),
        (
            {**GOOD, "metadata": {"faqs": [{"question": "q" * 301, "answer": "a"}]}},
            ["body", "metadata", "faqs", 0, "question"],
        ),
        (
            {**GOOD, "metadata": {"faqs": [{"question": "q", "answer": "a", "id": 1}]}},
            ["body", "metadata", "faqs", 0, "id"],
        ),
        (
            {**GOOD, "metadata": {"faqs": [{"question": "q", "answer": "a"}] * (MAX_FAQS + 1)}},
            ["body", "metadata", "faqs"],
        ),
    ],
)
def test_token_invalid_field_is_named(
    client: TestClient, body: dict[str, Any], loc: list[Any]
) -> None:
    r = post(client, body)
    assert loc in errors_at(r)
    assert r.headers["cache-control"] == "no-store"


def test_token_unknown_language_lists_supported(client: TestClient) -> None:
    msg = post(client, {**GOOD, "metadata": {"language": "klingon"}}).json()["detail"][0]["msg"]
    for code in supported_codes():
        assert code in msg


def test_token_faq_limits_inclusive(client: TestClient) -> None:
    faq = {"question": "q" * 300, "answer": "a" * 1500}
    # Eight full-size FAQs fit in MAX_FAQ_SET_BYTES; fifty tiny ones too.
    assert post(client, {**GOOD, "metadata": {"faqs": [faq] * 8}}).status_code == 200
    tiny = {"question": "q", "answer": "a"}
    assert post(client, {**GOOD, "metadata": {"faqs": [tiny] * MAX_FAQS}}).status_code == 200


def test_token_faq_set_over_the_shared_size_rule_refused(client: TestClient) -> None:
    faq = {"question": "q" * 300, "answer": "a" * 1500}
    r = post(client, {**GOOD, "metadata": {"faqs": [faq] * 9}})
    assert ["body", "metadata", "faqs"] in errors_at(r)
    assert str(MAX_FAQ_SET_BYTES) in r.json()["detail"][0]["msg"]


def test_token_faq_text_is_trimmed_before_limits(client: TestClient) -> None:
    faq = {"question": "  " + "q" * 300 + "\n", "answer": "\x00a\x07"}
    token = post(client, {**GOOD, "metadata": {"faqs": [faq]}}).json()["token"]
    faqs = json.loads(claims_of(token)["metadata"])["faqs"]
    assert faqs == [{"question": "q" * 300, "answer": "a"}]


# --- malformed requests: 4xx JSON, never 500 -------------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 422),
        (b"", "application/json", 422),
        (b"[1, 2]", "application/json", 422),
        (b"null", "application/json", 422),
        (b'"text"', "application/json", 422),
        (b"\xff\xfe\x00", "application/json", 400),
        (json.dumps(GOOD).encode(), "text/plain", 415),
        (b"room=avatar-1&identity=u", "application/x-www-form-urlencoded", 415),
        (json.dumps(GOOD).encode(), None, 415),
    ],
)
def test_token_malformed_body_is_json_4xx(
    client: TestClient, content: bytes, content_type: str | None, status: int
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    r = client.post("/api/token", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert "detail" in r.json()


def test_token_json_content_type_with_charset_accepted(client: TestClient) -> None:
    r = client.post(
        "/api/token",
        content=json.dumps(GOOD).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert r.status_code == 200


def test_token_body_too_large_is_413_json(client: TestClient) -> None:
    r = client.post(
        "/api/token",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json() == {"detail": "request body too large"}

    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 1024 + 2):
            yield b" " * 1024

    r = client.post("/api/token", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"detail": "request body too large"}


def test_unknown_route_and_method_are_json(client: TestClient) -> None:
    assert client.get("/nope").json() == {"detail": "Not Found"}
    r = client.get("/api/token")
    assert r.status_code == 405
    assert "detail" in r.json()


def test_healthz(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"


# --- CORS --------------------------------------------------------------------------------------


def test_cors_allows_listed_origin(client: TestClient) -> None:
    origin = "http://127.0.0.1:5173"
    r = client.options(
        "/api/token",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-api-key",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == origin
    assert "POST" in r.headers["access-control-allow-methods"]
    r = post(client, GOOD, headers={"origin": origin})
    assert r.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in r.headers


def test_cors_refuses_other_origins(client: TestClient) -> None:
    evil = "https://evil.example"
    r = client.options(
        "/api/token", headers={"origin": evil, "access-control-request-method": "POST"}
    )
    assert r.status_code == 400
    assert "access-control-allow-origin" not in r.headers
    r = post(client, GOOD, headers={"origin": evil})
    assert "access-control-allow-origin" not in r.headers


def test_cors_origins_from_settings() -> None:
    settings = make_settings(cors_origins="https://app.example")
    with TestClient(create_app(settings, rooms=FakeRooms())) as c:
        r = post(c, GOOD, headers={"origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = post(c, GOOD, headers={"origin": "http://127.0.0.1:5173"})
        assert "access-control-allow-origin" not in r.headers


# --- shared secret -----------------------------------------------------------------------------


@pytest.fixture
def locked_client() -> Iterator[TestClient]:
    with TestClient(
        create_app(make_settings(token_server_api_key="backend-shared-key"), rooms=FakeRooms())
    ) as c:
        yield c


@pytest.mark.parametrize("header", [None, "", "wrong", "backend-shared-key ", "BACKEND-SHARED-KEY"])
def test_api_key_required_when_configured(locked_client: TestClient, header: str | None) -> None:
    headers = {} if header is None else {"X-API-Key": header}
    r = post(locked_client, GOOD, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"detail": "missing or invalid X-API-Key header"}
    assert "backend-shared-key" not in r.text


def test_api_key_accepted(locked_client: TestClient) -> None:
    r = post(locked_client, GOOD, headers={"X-API-Key": "backend-shared-key"})
    assert r.status_code == 200
    assert locked_client.get("/healthz").status_code == 200


def test_api_key_not_needed_when_unset(client: TestClient) -> None:
    assert post(client, GOOD, headers={"X-API-Key": "anything"}).status_code == 200


# --- logging and secrets -----------------------------------------------------------------------


def test_one_log_line_per_token_without_secrets(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = post(client, GOOD).json()["token"]
    issued = [r for r in caplog.records if r.getMessage().startswith("issued token")]
    assert len(issued) == 1
    assert f"room={GOOD['room']}" in issued[0].getMessage()
    assert f"identity={GOOD['identity']}" in issued[0].getMessage()
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text
    assert SECRET not in caplog.text


def test_no_secret_in_any_response(
    locked_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    responses = [
        post(locked_client, GOOD, headers={"X-API-Key": "backend-shared-key"}),
        post(locked_client, GOOD),
        post(locked_client, {"bad": 1}, headers={"X-API-Key": "backend-shared-key"}),
        locked_client.get("/healthz"),
        locked_client.get("/openapi.json"),
    ]
    for r in responses:
        assert SECRET not in r.text
        assert "backend-shared-key" not in r.text
    assert "backend-shared-key" not in caplog.text
    assert SECRET not in caplog.text


def test_openapi_documents_exact_room_pattern(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    room = schema["components"]["schemas"]["TokenRequest"]["properties"]["room"]
    assert room["pattern"] == "^avatar-[A-Za-z0-9_-]{1,64}$"

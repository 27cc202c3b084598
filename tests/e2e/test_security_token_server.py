"""The running token server (`python -m token_server` under uvicorn) under bad input and abuse.

The unit tests fuzz the ASGI app in process and test CORS and the rate limiter there; these
tests hit the real process over real HTTP, where uvicorn parses the requests and the body
limit, CORS and error handlers meet real sockets:

- schemathesis fuzz of its own OpenAPI document, fetched from the live server: never a 5xx;
- hand-made malformed requests (chunked oversized body, invalid UTF-8, deep nesting, an
  oversized Content-Length, bytes that are not HTTP): a JSON 4xx (or uvicorn's own 400), never
  a 5xx, and the server keeps serving; a 100 KB header is served or refused with 400 depending
  on how its bytes arrive (h11 has no fixed header limit: the deployment's proxy sets one);
- CORS preflight and actual answers for an allowed and a foreign origin;
- the rate limit of a token server started with a low RATE_LIMIT_PER_MINUTE: 429 with
  Retry-After, readable by the allowed browser origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from devstack.stack import Stack, StackConfig

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

FUZZ_EXAMPLES = 120
FOREIGN_ORIGIN = "https://evil.example"


def _base(stack: Stack) -> str:
    return stack.token_url.removesuffix("/api/token")


def _allowed_origin(stack: Stack) -> str:
    return stack.env["CORS_ORIGINS"].split(",")[0]


def _good_body() -> dict[str, Any]:
    return {"room": f"avatar-{secrets.token_hex(4)}", "identity": "user-live"}


def test_live_token_server_schema_fuzz_never_5xx(stack: Stack) -> None:
    """Positive and negative cases from the document the running server serves."""
    # (schemathesis' lazy pytest loader does not work under pytest 9: strategies by hand.)
    schema = schemathesis.openapi.from_url(f"{_base(stack)}/openapi.json")
    cases = st.one_of(*(schema.as_strategy(generation_mode=mode) for mode in GenerationMode))
    statuses: set[int] = set()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def fuzz(case: schemathesis.Case[Any]) -> None:
        response = case.call(timeout=10)
        statuses.add(response.status_code)
        assert response.status_code < 500, response.text
        case.validate_response(response, checks=[not_a_server_error])

    fuzz()
    assert 200 in statuses  # valid requests got through to minting too
    assert 422 in statuses


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=_base(stack), timeout=10) as client:
        yield client


def _is_json_error(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json") and (
        "detail" in response.json()
    )


async def test_chunked_oversized_body_is_a_json_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"room": "avatar-x", "identity": "user-x", "metadata": {"faqs": ["'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"]}}'

    response = await http.post(
        "/api/token", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert _is_json_error(response)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{not utf-8}",
        b'{"room": "avatar-x", "identity": "user-x", "metadata": ' + b"[" * 5000,
        b'{"room": "avatar-x", "identity": "user-x", "metadata": {"faqs": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        b"null",
        b'{"room": "avatar-\\u0000", "identity": "user-\\ud800"}',
        b'{"room": "avatar-x", "identity": "user-x", "room": "avatar-y", "__proto__": {}}',
    ],
    ids=["bad utf-8", "unterminated nesting", "deep nesting", "null", "escapes", "duplicates"],
)
async def test_malformed_bodies_are_json_4xx(http: httpx.AsyncClient, body: bytes) -> None:
    response = await http.post(
        "/api/token", content=body, headers={"Content-Type": "application/json"}
    )
    # 422 when it parses as JSON, 400 when it does not even decode (bad UTF-8, too deep)
    assert response.status_code in (400, 422), response.text
    assert _is_json_error(response)


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One whole HTTP response (headers, then Content-Length bytes), or what came before EOF.

    A single read can return the headers alone: the body may arrive in a later segment.
    """
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    length = re.search(rb"(?im)^content-length:\s*(\d+)\r$", head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return head + body


async def test_raw_http_abuse_never_gets_a_5xx(stack: Stack) -> None:
    host, port = _base(stack).removeprefix("http://").split(":")
    answers = []
    for request in (
        # declares more than the limit: refused before the body is read
        b"POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 999999999\r\n\r\n{}",
        # one header of 100 KB
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
        # not HTTP at all
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(request)
            await writer.drain()
            answers.append(await asyncio.wait_for(_read_response(reader), timeout=10))
        finally:
            writer.close()
            # The server closes with our unread bytes in its buffer (the body it refused, the
            # rest of a header): its kernel answers with a reset, after the response was read.
            with contextlib.suppress(ConnectionResetError):
                await writer.wait_closed()
    declared, big_header, garbage = answers
    assert declared.startswith(b"HTTP/1.1 413 "), declared[:200]
    assert b'"detail"' in declared
    # uvicorn (h11) serves the big header or refuses it with 400, depending on how the bytes
    # arrive: no reliable header size limit of its own, so put the token server behind a proxy
    # that has one. Garbage gets 400 or a closed connection. Never a 5xx.
    assert big_header.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 400 ")), big_header[:200]
    assert garbage == b"" or garbage.startswith(b"HTTP/1.1 400 "), garbage[:200]
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{_base(stack)}/healthz")).status_code == 200


# --- CORS ----------------------------------------------------------------------------------------


async def test_cors_preflight_and_answer_for_the_allowed_origin(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    origin = _allowed_origin(stack)
    preflight = await http.options(
        "/api/token",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()
    response = await http.post("/api/token", json=_good_body(), headers={"Origin": origin})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == origin
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_gives_a_foreign_origin_nothing_to_read(http: httpx.AsyncClient) -> None:
    preflight = await http.options(
        "/api/token",
        headers={"Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    # CORS is enforced by browsers: the server still answers, without the header they need.
    response = await http.post("/api/token", json=_good_body(), headers={"Origin": FOREIGN_ORIGIN})
    assert "access-control-allow-origin" not in response.headers


# --- rate limit ----------------------------------------------------------------------------------

LOW_LIMIT = 3


@pytest.fixture(scope="module")
def limited_token_server() -> Iterator[Stack]:
    # livekit-server too: the token server creates each token's room there.
    config = StackConfig(
        services=("token_server",),
        env={"RATE_LIMIT_PER_MINUTE": str(LOW_LIMIT)},
    )
    with Stack(config) as stack:
        yield stack


async def test_rate_limit_answers_429_with_retry_after(limited_token_server: Stack) -> None:
    stack = limited_token_server
    origin = _allowed_origin(stack)
    async with httpx.AsyncClient(timeout=10) as client:
        statuses = []
        for _ in range(LOW_LIMIT + 2):
            response = await client.post(
                stack.token_url, json=_good_body(), headers={"Origin": origin}
            )
            statuses.append(response.status_code)
        health = await client.get(stack.token_url.removesuffix("/api/token") + "/healthz")
    assert statuses == [200] * LOW_LIMIT + [429, 429]
    assert response.json() == {"detail": "too many token requests; retry later"}
    assert int(response.headers["retry-after"]) >= 1
    # the browser page may read Retry-After
    assert response.headers["access-control-allow-origin"] == origin
    assert "retry-after" in response.headers["access-control-expose-headers"].lower()
    assert health.status_code == 200  # the limit is on tokens, not on the health probe

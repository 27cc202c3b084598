"""token_server.limiter (in memory) and POST /api/token: 429 with Retry-After, per client."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from token_server_fakes import FakeRooms

from token_server import create_app, load_settings
from token_server.deps import rate_limit_key
from token_server.limiter import TokenRateLimit

pytestmark = pytest.mark.unit

GOOD = {"room": "avatar-rl", "identity": "user-1"}


def make_app(per_minute: int, *, window_seconds: int = 60, **overrides: Any) -> Any:
    settings = load_settings(
        livekit_api_key="k",
        livekit_api_secret="x" * 40,
        rate_limit_per_minute=per_minute,
        _env_file=None,
        **overrides,
    )
    limiter = TokenRateLimit(per_minute, window_seconds=window_seconds)
    return create_app(settings, rate_limiter=limiter, rooms=FakeRooms())


async def test_limiter_allows_a_burst_then_waits_for_the_window() -> None:
    limiter = TokenRateLimit(6)
    assert [await limiter.acquire("a") for _ in range(6)] == [0.0] * 6
    wait = await limiter.acquire("a")
    assert 59 < wait <= 60
    assert await limiter.acquire("b") == 0.0  # other clients are not affected


async def test_limiter_refused_requests_do_not_extend_the_wait() -> None:
    limiter = TokenRateLimit(2)
    for _ in range(2):
        await limiter.acquire("a")
    waits = [await limiter.acquire("a") for _ in range(5)]
    assert waits == sorted(waits, reverse=True)  # counting down, never pushed back
    assert all(0 < w <= 60 for w in waits)


async def test_limiter_allows_again_once_the_window_has_passed() -> None:
    limiter = TokenRateLimit(2, window_seconds=1)
    assert [await limiter.acquire("a") for _ in range(3)][2] > 0
    await asyncio.sleep(1.1)
    assert await limiter.acquire("a") == 0.0


def test_limiter_rejects_nonpositive_budget() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        TokenRateLimit(0)


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.5, "60")])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: str) -> None:
    assert TokenRateLimit.retry_after_header(wait) == header


def test_route_returns_429_with_retry_after() -> None:
    with TestClient(make_app(3, window_seconds=2)) as c:
        assert [c.post("/api/token", json=GOOD).status_code for _ in range(3)] == [200] * 3
        r = c.post("/api/token", json=GOOD, headers={"origin": "http://localhost:5173"})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "2"
        assert r.json() == {"detail": "too many token requests; retry later"}
        assert r.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert "retry-after" in r.headers["access-control-expose-headers"].lower()
        assert c.get("/healthz").status_code == 200  # health checks are never limited
        time.sleep(2.1)  # the window passes
        assert c.post("/api/token", json=GOOD).status_code == 200


def test_route_counts_invalid_requests_too() -> None:
    with TestClient(make_app(2)) as c:
        assert c.post("/api/token", json={**GOOD, "identity": "agent"}).status_code == 422
        assert c.post("/api/token", json=GOOD).status_code == 200
        assert c.post("/api/token", json=GOOD).status_code == 429


def test_forwarded_for_ignored_unless_trusted() -> None:
    with TestClient(make_app(1)) as c:
        assert c.post("/api/token", json=GOOD, headers={"x-forwarded-for": "1.1.1.1"}).is_success
        r = c.post("/api/token", json=GOOD, headers={"x-forwarded-for": "2.2.2.2"})
        assert r.status_code == 429  # the spoofable header does not buy a new bucket


def test_forwarded_for_used_when_trusted() -> None:
    with TestClient(make_app(1, trust_proxy_headers=True)) as c:
        ok = c.post("/api/token", json=GOOD, headers={"x-forwarded-for": "9.9.9.9, 1.1.1.1"})
        assert ok.status_code == 200
        # The proxy appends the address it saw: the right-most hop is the client.
        again = c.post("/api/token", json=GOOD, headers={"x-forwarded-for": "8.8.8.8, 1.1.1.1"})
        assert again.status_code == 429
        other = c.post("/api/token", json=GOOD, headers={"x-forwarded-for": "2.2.2.2"})
        assert other.status_code == 200


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_rate_limit_key_is_ipv4_address_or_ipv6_64(address: str, key: str) -> None:
    assert rate_limit_key(address) == key


def test_rotating_ipv6_addresses_in_one_64_share_a_bucket() -> None:
    app = make_app(3, trust_proxy_headers=True)
    body = {"room": "avatar-a1", "identity": "u"}
    with TestClient(app) as client:
        codes = [
            client.post(
                "/api/token", json=body, headers={"x-forwarded-for": f"2001:db8:7:7::{n:x}"}
            ).status_code
            for n in range(1, 6)
        ]
        other = client.post(
            "/api/token", json=body, headers={"x-forwarded-for": "2001:db8:7:8::1"}
        ).status_code
    assert codes == [200, 200, 200, 429, 429]
    assert other == 200

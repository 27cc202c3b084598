"""The token rate limit (`limits`, moving window): in memory, and falling back to memory when
Redis cannot be reached. The shared-Redis behaviour is an e2e test (two token servers)."""

from __future__ import annotations

import logging
import math

import pytest

from devstack.ports import free_tcp_port
from token_server.limiter import TokenRateLimit

pytestmark = pytest.mark.unit


async def test_budget_then_a_wait_of_at_most_the_window() -> None:
    limit = TokenRateLimit(3)
    waits = [await limit.acquire("198.51.100.7") for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0 < waits[3] <= 60
    assert limit.retry_after_header(waits[3]) == str(math.ceil(waits[3]))
    assert not limit.shared


async def test_clients_have_budgets_of_their_own() -> None:
    limit = TokenRateLimit(1)
    assert await limit.acquire("a") == 0.0
    assert await limit.acquire("b") == 0.0
    assert await limit.acquire("a") > 0


async def test_unreachable_redis_falls_back_to_memory_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    # A loopback port nobody listens on: connection refused at once.
    url = f"redis://:pw@127.0.0.1:{free_tcp_port()}/0"
    limit = TokenRateLimit(2, redis_url=url, retry_after=30, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="token_server.limiter"):
        waits = [await limit.acquire("k") for _ in range(3)]
        now[0] = 31.0  # Redis is tried again after `retry_after`, and still down
        waits.append(await limit.acquire("k"))
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] > 0
    assert waits[3] > 0
    assert not limit.shared
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1
    assert "pw" not in caplog.text


def test_a_budget_needs_one_request_at_least() -> None:
    with pytest.raises(ValueError, match="per_minute"):
        TokenRateLimit(0)

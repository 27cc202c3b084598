"""Token servers behind a load balancer share one rate limit through Redis (REDIS_URL), and keep
issuing tokens, each counting in memory, while Redis is down.

Two real token server processes against one livekit-server: requests alternate between them, as
a round-robin balancer would send them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from devstack.paths import LOG_DIR
from devstack.redis_server import RedisServer
from devstack.stack import Stack, StackConfig

pytestmark = pytest.mark.e2e

LIMIT = 3


def _body() -> dict[str, str]:
    return {"room": f"avatar-{secrets.token_hex(6)}", "identity": "user-scaled"}


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _pair(redis_url: str | None) -> tuple[Stack, Stack]:
    env = {"RATE_LIMIT_PER_MINUTE": str(LIMIT), "LOG_LEVEL": "DEBUG"}
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    first = Stack(StackConfig(services=("token_server",), env=env))
    second = Stack(
        StackConfig(
            livekit=first.config.livekit,
            run_livekit=False,
            services=("token_server",),
            env=env,
            log_dir=LOG_DIR / "replica",  # its own log file (names are keyed by the server port)
        )
    )
    return first, second


def _alternate(stacks: tuple[Stack, Stack], count: int) -> list[int]:
    with httpx.Client(timeout=10) as client:
        return [
            client.post(stacks[i % 2].token_url, json=_body()).status_code for i in range(count)
        ]


def test_replicas_share_one_budget_through_redis(redis: RedisServer) -> None:
    first, second = _pair(redis.config.url)
    with first, second:
        codes = _alternate((first, second), 2 * LIMIT)
        logs = first.services["token_server"].log_path.read_text()
    assert codes == [200] * LIMIT + [429] * LIMIT
    assert redis.config.password not in logs


def test_without_redis_each_replica_counts_alone() -> None:
    """The control: the same traffic with no REDIS_URL gets twice the budget."""
    first, second = _pair(None)
    with first, second:
        codes = _alternate((first, second), 2 * LIMIT + 2)
    assert codes == [200] * (2 * LIMIT) + [429, 429]


def test_redis_down_tokens_still_issued_counted_in_memory(redis: RedisServer) -> None:
    first, second = _pair(redis.config.url)
    with first, second:
        assert _alternate((first, second), 2) == [200, 200]
        redis.stop()
        codes = _alternate((first, second), 2 * LIMIT + 2)
        logs = [s.services["token_server"].log_path.read_text() for s in (first, second)]
    # Each replica now counts alone, from zero: LIMIT each, then 429.
    assert codes == [200] * (2 * LIMIT) + [429, 429]
    for log in logs:
        assert log.count("Redis unreachable") == 1  # once per replica and outage
        assert redis.config.password not in log

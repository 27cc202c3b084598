from __future__ import annotations

import asyncio
import json
import logging

import pytest
from agent_fakes import FakeRpcSender
from livekit.rtc import RpcError

from agent.state_notifier import RetryPolicy, StateNotifier
from common.protocol import RPC_AGENT_STATE_CHANGED, AgentStateEvent

pytestmark = pytest.mark.unit

FAST = RetryPolicy(budget=1.0, initial_delay=0.01, max_delay=0.04, response_timeout=1.0)
USER = "user-abc"


def _events(sender: FakeRpcSender) -> list[AgentStateEvent]:
    return [AgentStateEvent.model_validate_json(p) for p in sender.delivered]


async def _settle(notifier: StateNotifier, sender: FakeRpcSender, count: int) -> None:
    for _ in range(500):
        if len(sender.delivered) >= count:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)


async def test_each_change_is_sent_to_the_user_with_the_schema() -> None:
    sender = FakeRpcSender()
    notifier = StateNotifier(sender, USER, policy=FAST, clock=lambda: 1_700_000_000.5)
    notifier.on_agent_state("listening", "initializing")
    await _settle(notifier, sender, 1)
    destination, method, payload = sender.calls[0]
    assert (destination, method) == (USER, RPC_AGENT_STATE_CHANGED)
    assert json.loads(payload) == {
        "state": "listening",
        "previous": "initializing",
        "seq": 1,
        "timestamp": 1_700_000_000_500.0,
    }
    await notifier.aclose()


async def test_changes_arrive_in_order_with_strictly_increasing_seq() -> None:
    sender = FakeRpcSender()
    notifier = StateNotifier(sender, USER, policy=FAST)
    for state in ("listening", "thinking", "speaking", "listening"):
        notifier.on_agent_state(state)  # type: ignore[arg-type]
        await _settle(notifier, sender, len(sender.delivered) + 1)
    events = _events(sender)
    assert [e.state for e in events] == ["listening", "thinking", "speaking", "listening"]
    assert [e.previous for e in events] == ["initializing", "listening", "thinking", "speaking"]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    await notifier.aclose()


async def test_a_burst_collapses_to_the_newest_state() -> None:
    sender = FakeRpcSender(delay=0.05)  # the first send is in flight during the burst
    notifier = StateNotifier(sender, USER, policy=FAST)
    notifier.on_agent_state("listening")
    await asyncio.sleep(0.01)
    for state in ("thinking", "speaking", "listening", "thinking"):
        notifier.on_agent_state(state)  # type: ignore[arg-type]
    await _settle(notifier, sender, 2)
    events = _events(sender)
    assert [(e.state, e.seq) for e in events] == [("listening", 1), ("thinking", 5)]
    assert notifier.seq == 5
    await notifier.aclose()


@pytest.mark.parametrize("code", [1400, 1401, 1501, 1502, 1503, 409])
async def test_not_ready_errors_are_retried_with_backoff(code: int) -> None:
    sender = FakeRpcSender(failures=[code, code, code])
    notifier = StateNotifier(sender, USER, policy=FAST)
    loop = asyncio.get_running_loop()
    started = loop.time()
    notifier.on_agent_state("listening")
    await _settle(notifier, sender, 1)
    assert len(sender.calls) == 4
    assert [e.seq for e in _events(sender)] == [1]
    # 0.01 + 0.02 + 0.04 of backoff at least
    assert loop.time() - started >= 0.07
    await notifier.aclose()


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=0.25, max_delay=2.0, multiplier=2.0)
    assert [policy.delay(n) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]


async def test_budget_exhausted_gives_up_with_a_log(caplog: pytest.LogCaptureFixture) -> None:
    sender = FakeRpcSender(failures=[1400] * 100)
    policy = RetryPolicy(budget=0.1, initial_delay=0.02, max_delay=0.02)
    notifier = StateNotifier(sender, USER, policy=policy)
    with caplog.at_level(logging.WARNING, logger="agent.state_notifier"):
        notifier.on_agent_state("listening")
        await asyncio.sleep(0.3)
    assert sender.delivered == []
    assert 2 <= len(sender.calls) <= 7
    assert any("giving up" in r.getMessage() for r in caplog.records)
    # the notifier still works for the next change
    sender.failures.clear()
    notifier.on_agent_state("thinking")
    await _settle(notifier, sender, 1)
    assert [e.state for e in _events(sender)] == ["thinking"]
    await notifier.aclose()


async def test_other_errors_are_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    sender = FakeRpcSender(failures=[1500])
    notifier = StateNotifier(sender, USER, policy=FAST)
    with caplog.at_level(logging.WARNING, logger="agent.state_notifier"):
        notifier.on_agent_state("listening")
        await asyncio.sleep(0.05)
    assert len(sender.calls) == 1
    assert any("not retried" in r.getMessage() for r in caplog.records)
    await notifier.aclose()


async def test_a_newer_state_replaces_one_waiting_for_a_retry() -> None:
    sender = FakeRpcSender(failures=[1400])
    policy = RetryPolicy(budget=5.0, initial_delay=0.5, max_delay=0.5)
    notifier = StateNotifier(sender, USER, policy=policy)
    notifier.on_agent_state("listening")
    await asyncio.sleep(0.02)  # first attempt failed; waiting 0.5 s before the retry
    notifier.on_agent_state("thinking")
    await _settle(notifier, sender, 1)
    assert [(e.state, e.seq) for e in _events(sender)] == [("thinking", 2)]
    assert len(sender.calls) == 2
    await notifier.aclose()


async def test_reconnect_resends_the_current_state_with_a_new_seq() -> None:
    sender = FakeRpcSender()
    notifier = StateNotifier(sender, USER, policy=FAST)
    notifier.resend_current()  # nothing happened yet: nothing to resend
    await asyncio.sleep(0.02)
    assert sender.calls == []
    notifier.on_agent_state("listening", "speaking")
    await _settle(notifier, sender, 1)
    notifier.resend_current()
    await _settle(notifier, sender, 2)
    first, again = _events(sender)
    assert (again.state, again.previous, again.timestamp) == (
        first.state,
        first.previous,
        first.timestamp,
    )
    assert again.seq == first.seq + 1
    await notifier.aclose()


async def test_state_change_never_blocks_the_caller() -> None:
    sender = FakeRpcSender(delay=10.0)
    notifier = StateNotifier(sender, USER, policy=FAST)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(1000):
        notifier.on_agent_state("thinking")
    assert loop.time() - started < 0.5
    assert notifier.state == "thinking"
    await notifier.aclose()


def test_rpc_error_codes_match_the_sdk() -> None:
    assert RpcError.ErrorCode.UNSUPPORTED_METHOD == 1400
    assert RpcError.ErrorCode.RECIPIENT_NOT_FOUND == 1401
    assert RpcError.ErrorCode.CONNECTION_TIMEOUT == 1501

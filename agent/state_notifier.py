"""`agent_state_changed`: tell the user's page every agent state change over RPC.

Delivery rules (the page's contract, see the README's "RPC contract"):

- Every change gets the next `seq` (strictly increasing per session) and the time it happened.
- One sender task and one pending slot: a burst of changes collapses to the newest, and because
  sends happen one at a time in `seq` order, a stale state is never delivered after a newer one.
- "Not ready yet" errors (the page registers its handler late, the user is between reconnects,
  the data channel is slow) are retried with exponential backoff within a bounded budget; any
  other error, or the budget running out, drops that event with a log line.
- `on_agent_state` only records and wakes the sender: the voice pipeline never waits for the page.
- When the user reconnects, `resend_current` delivers the current state again (with a new `seq`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from livekit import rtc
from livekit.agents import AgentSession, AgentStateChangedEvent

from common.protocol import RPC_AGENT_STATE_CHANGED, AgentState, AgentStateEvent, RpcErrorCode

__all__ = [
    "RETRYABLE_RPC_ERRORS",
    "RetryPolicy",
    "RpcSender",
    "StateNotifier",
    "notify_state_changes",
]

logger = logging.getLogger(__name__)

_Code = rtc.RpcError.ErrorCode
# The errors that mean "the page is not ready (yet)" rather than "the page refused".
RETRYABLE_RPC_ERRORS: frozenset[int] = frozenset(
    {
        _Code.UNSUPPORTED_METHOD,  # 1400: the page registers its handler after our first call
        _Code.RECIPIENT_NOT_FOUND,  # 1401: the user is (re)joining
        _Code.CONNECTION_TIMEOUT,  # 1501: no ACK in time (load, slow data channel)
        _Code.RESPONSE_TIMEOUT,  # 1502: the page's handler did not answer in time
        _Code.RECIPIENT_DISCONNECTED,  # 1503: dropped mid-call; a rejoin may follow
        _Code.SEND_FAILED,  # 1505: transient transport failure
        # 409: the page does not know us yet (our call overtook our join after a reconnect).
        int(RpcErrorCode.NOT_READY),
    }
)


class RpcSender(Protocol):
    """What the notifier needs from `rtc.LocalParticipant` (tests pass a fake)."""

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff for one event, bounded by `budget` seconds since its first attempt."""

    budget: float = 15.0
    initial_delay: float = 0.25
    max_delay: float = 2.0
    multiplier: float = 2.0
    response_timeout: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1)))


class StateNotifier:
    def __init__(
        self,
        sender: RpcSender,
        user_identity: str,
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sender = sender
        self._user_identity = user_identity
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._seq = 0
        self._state: AgentState = "initializing"
        self._previous: AgentState | None = None
        self._changed_at_ms = clock() * 1000.0
        self._pending: AgentStateEvent | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def seq(self) -> int:
        """The seq of the newest state (0 before the first change)."""
        return self._seq

    def on_agent_state(self, state: AgentState, previous: AgentState | None = None) -> None:
        """Record a state change and schedule its delivery. Never blocks."""
        self._previous = previous if previous is not None else self._state
        self._state = state
        self._changed_at_ms = self._clock() * 1000.0
        self._enqueue()

    def resend_current(self) -> None:
        """Deliver the current state again (the user reconnected); it gets a new seq."""
        if self._seq == 0:
            return
        self._enqueue()

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _enqueue(self) -> None:
        if self._closed:
            return
        self._seq += 1
        self._pending = AgentStateEvent(
            state=self._state,
            previous=self._previous,
            seq=self._seq,
            timestamp=round(self._changed_at_ms, 3),
        )
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="agent_state_notifier"
            )
            self._task.add_done_callback(_log_task_failure)

    async def _run(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            event, self._pending = self._pending, None
            if event is not None:
                await self._deliver(event)

    async def _deliver(self, event: AgentStateEvent) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._policy.budget
        payload = event.model_dump_json()
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._sender.perform_rpc(
                    destination_identity=self._user_identity,
                    method=RPC_AGENT_STATE_CHANGED,
                    payload=payload,
                    response_timeout=self._policy.response_timeout,
                )
            except rtc.RpcError as exc:
                if exc.code not in RETRYABLE_RPC_ERRORS:
                    logger.warning(
                        "agent_state_changed seq=%d (%s) refused by %s: %d %s; not retried",
                        event.seq,
                        event.state,
                        self._user_identity,
                        exc.code,
                        exc.message,
                    )
                    return
                delay = self._policy.delay(attempt)
                if loop.time() + delay > deadline:
                    logger.warning(
                        "agent_state_changed seq=%d (%s) not delivered to %s after %d attempts "
                        "within %.1fs (last error %d %s); giving up on it",
                        event.seq,
                        event.state,
                        self._user_identity,
                        attempt,
                        self._policy.budget,
                        exc.code,
                        exc.message,
                    )
                    return
                logger.debug(
                    "agent_state_changed seq=%d attempt %d failed with %d; retrying in %.2fs",
                    event.seq,
                    attempt,
                    exc.code,
                    delay,
                )
                if await self._newer_arrives_within(delay):
                    return  # latest wins: the newer event replaces this one
                continue
            return

    async def _newer_arrives_within(self, delay: float) -> bool:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=delay)
        except TimeoutError:
            return False
        return True


def _log_task_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("agent state notifier failed", exc_info=exc)


def notify_state_changes(
    session: AgentSession[None], sender: RpcSender, user_identity: str, *, policy: RetryPolicy
) -> StateNotifier:
    """Send every state change of `session` to the user; the returned notifier owns the task."""
    notifier = StateNotifier(sender, user_identity, policy=policy)

    def _on_state(ev: AgentStateChangedEvent) -> None:
        notifier.on_agent_state(ev.new_state, ev.old_state)

    session.on("agent_state_changed", _on_state)
    return notifier

"""How a session ends or survives: user leaves, drops and rejoins, goes idle, providers fail.

- The user leaves on purpose (client-initiated disconnect): RoomIO's `close_on_disconnect`
  closes the session; `end_job_when_session_closes` then ends the job, freeing the process.
- The user's connection drops (any other reason): RoomIO keeps the session and re-links the
  same identity when it rejoins; `wait_for_rejoin` gives it a grace period, re-sends the agent
  state on rejoin, and closes the session when the grace runs out.
- The user stays silent for the idle timeout (the session's `user_away_timeout`, user state
  "away"): `end_when_idle` says the goodbye line and closes the session.
- A provider fails (`error` event that is not recoverable, i.e. after the retries of
  `agent.pipeline.provider_connect_options`): `speak_fallback_on_errors` logs it and says the
  fallback line (unless TTS is what failed), and the agent goes back to listening. The session
  outlives provider outages (`MAX_UNRECOVERABLE_ERRORS`): the next turn after the provider is
  back is answered normally.
- The worker is told to stop (SIGTERM/SIGINT): it drains, i.e. takes no new job and exits once
  the running sessions have ended; `agent.forkserver_signals` keeps a signal sent to the whole
  process group away from the job processes it is draining.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from livekit import rtc
from livekit.agents import AgentSession, CloseEvent, ErrorEvent, UserStateChangedEvent
from livekit.agents.voice import SpeechHandle
from livekit.agents.voice.room_io.types import DEFAULT_CLOSE_ON_DISCONNECT_REASONS

from .tasks import BackgroundTasks

__all__ = [
    "FALLBACK_MIN_INTERVAL_SECONDS",
    "MAX_UNRECOVERABLE_ERRORS",
    "Lines",
    "end_job_when_session_closes",
    "end_when_idle",
    "speak_fallback_on_errors",
    "wait_for_rejoin",
]

logger = logging.getLogger(__name__)

FALLBACK_MIN_INTERVAL_SECONDS = 5.0

# The session's `max_unrecoverable_errors`. The framework's default (3) closes the session at the
# 4th consecutive unrecoverable error of one provider, and its STT count is reset only by a
# transcript: four utterances during an STT outage made the agent leave without a word, and
# typed messages (which need no STT) died with it. Provider outages are handled here instead
# (fallback line, back to listening); a session ends when the user leaves, drops for good or
# goes idle, never because a provider had a bad minute.
MAX_UNRECOVERABLE_ERRORS = 1_000_000


class Lines(Protocol):
    """Speaks the fixed per-language lines; `agent.conversation.Conversation` in production."""

    @property
    def fallback_line(self) -> str: ...

    @property
    def goodbye_line(self) -> str: ...

    def say_line(self, text: str, *, allow_interruptions: bool = True) -> SpeechHandle: ...


def end_job_when_session_closes(
    session: AgentSession[None], shutdown: Callable[[str], None]
) -> None:
    def _on_close(ev: CloseEvent) -> None:
        logger.info("session closed (%s); ending the job", ev.reason.value)
        shutdown(f"session closed: {ev.reason.value}")

    session.on("close", _on_close)


def end_when_idle(session: AgentSession[None], lines: Lines, tasks: BackgroundTasks) -> None:
    """Say goodbye and close the session when the user is "away" (idle timeout)."""
    ending = False

    async def _goodbye() -> None:
        logger.info("user idle for the timeout; saying goodbye and ending the session")
        handle = lines.say_line(lines.goodbye_line, allow_interruptions=False)
        await handle.wait_for_playout()
        session.shutdown(drain=True)

    def _on_user_state(ev: UserStateChangedEvent) -> None:
        nonlocal ending
        if ev.new_state == "away" and not ending:
            ending = True
            tasks.spawn(_goodbye(), name="idle_goodbye")

    session.on("user_state_changed", _on_user_state)


def speak_fallback_on_errors(
    session: AgentSession[None],
    lines: Lines,
    *,
    min_interval: float = FALLBACK_MIN_INTERVAL_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    last_spoken = -min_interval

    def _on_error(ev: ErrorEvent) -> None:
        nonlocal last_spoken
        error = ev.error
        kind = str(getattr(error, "type", type(error).__name__))
        cause = getattr(error, "error", error)
        if getattr(error, "recoverable", False):
            logger.warning("recoverable %s (retrying): %s", kind, cause)
            return
        logger.error("unrecoverable %s: %s", kind, cause)
        if kind == "tts_error":
            return  # the fallback line would fail the same way
        now = clock()
        if now - last_spoken < min_interval:
            return
        last_spoken = now
        try:
            lines.say_line(lines.fallback_line)
        except RuntimeError as exc:
            logger.warning("could not say the fallback line: %s", exc)

    session.on("error", _on_error)


def wait_for_rejoin(
    room: rtc.Room,
    session: AgentSession[None],
    user_identity: str,
    *,
    grace: float,
    on_rejoin: Callable[[], None],
    tasks: BackgroundTasks,
) -> None:
    """Keep the session through a dropped connection for `grace` seconds."""
    timer: asyncio.Task[None] | None = None

    async def _expire() -> None:
        await asyncio.sleep(grace)
        logger.info("user %s did not rejoin within %.0fs; ending the session", user_identity, grace)
        session.shutdown(drain=False)

    def _on_disconnected(participant: rtc.RemoteParticipant) -> None:
        nonlocal timer
        if participant.identity != user_identity:
            return
        reason = participant.disconnect_reason
        if reason in DEFAULT_CLOSE_ON_DISCONNECT_REASONS:
            return  # left on purpose: RoomIO closes the session
        logger.info(
            "user %s dropped (%s); waiting %.0fs for a rejoin",
            user_identity,
            rtc.DisconnectReason.Name(reason) if reason is not None else "unknown",
            grace,
        )
        if timer is None or timer.done():
            timer = tasks.spawn(_expire(), name="user_rejoin_grace")

    def _on_connected(participant: rtc.RemoteParticipant) -> None:
        nonlocal timer
        if participant.identity != user_identity:
            return
        if timer is not None and not timer.done():
            timer.cancel()
        timer = None
        logger.info("user %s rejoined; re-sending the agent state", user_identity)
        on_rejoin()

    def _on_reconnected() -> None:
        # Our own connection came back (e.g. the server restarted). A user who reconnected first
        # raises no `participant_connected` for us: re-send the state to them now.
        if user_identity in room.remote_participants:
            logger.info("reconnected; re-sending the agent state to %s", user_identity)
            on_rejoin()

    room.on("participant_disconnected", _on_disconnected)
    room.on("participant_connected", _on_connected)
    room.on("reconnected", _on_reconnected)

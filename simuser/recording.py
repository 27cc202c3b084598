"""What the simulated user saw, each item stamped on two clocks.

Every record carries a `Stamp`:

- `mono` is `time.perf_counter()` in seconds. Use it for intervals measured inside this process
  (end of user speech -> first agent audio, join -> first `listening`): it never jumps.
- `wall_ms` is `time.time_ns() / 1e6`, unix milliseconds. Use it only to compare with clocks of
  other processes on the same machine, chiefly `AgentStateEvent.timestamp` (unix ms set by the
  agent): state RPC latency = `StateChange.received.wall_ms - StateChange.event.timestamp`.

Both are read back to back in `Stamp.now()`, so `Stamp.shifted()` keeps them consistent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

from common.protocol import AgentStateEvent

__all__ = [
    "AudioMark",
    "ParticipantEvent",
    "Recording",
    "RpcCall",
    "Stamp",
    "StateChange",
    "TranscriptStream",
    "Utterance",
]

T = TypeVar("T")

ATTR_TRACK_ID = "lk.transcribed_track_id"
ATTR_FINAL = "lk.transcription_final"
ATTR_SEGMENT_ID = "lk.segment_id"


@dataclass(frozen=True, slots=True)
class Stamp:
    """One instant on the monotonic clock (`mono`, s) and on the wall clock (`wall_ms`, unix ms)."""

    mono: float
    wall_ms: float

    @classmethod
    def now(cls) -> Stamp:
        return cls(mono=time.perf_counter(), wall_ms=time.time_ns() / 1e6)

    def shifted(self, seconds: float) -> Stamp:
        return Stamp(mono=self.mono + seconds, wall_ms=self.wall_ms + seconds * 1000.0)

    def since(self, earlier: Stamp) -> float:
        """Seconds from `earlier` to this stamp, on the monotonic clock."""
        return self.mono - earlier.mono


@dataclass(frozen=True, slots=True)
class StateChange:
    """One `agent_state_changed` RPC received from the agent."""

    event: AgentStateEvent
    caller: str
    received: Stamp

    @property
    def latency_ms(self) -> float:
        """Agent-side change -> handler invoked, in ms (wall clocks of the same machine)."""
        return self.received.wall_ms - self.event.timestamp


@dataclass(slots=True)
class TranscriptStream:
    """One text stream on `lk.transcription`, read to its end.

    `attributes` are the header's merged with those of the stream's trailer (the SDK updates
    them at end of stream, where the final flag may be set). `is_transcription` is what the
    browser checks before showing it: a `lk.transcribed_track_id` attribute.
    """

    participant: str
    stream_id: str
    attributes: dict[str, str]
    started: Stamp
    sent_ms: int | None = None
    text: str = ""
    chunks: int = 0
    ended: Stamp | None = None
    error: str | None = None

    @property
    def is_transcription(self) -> bool:
        return bool(self.attributes.get(ATTR_TRACK_ID))

    @property
    def track_id(self) -> str | None:
        return self.attributes.get(ATTR_TRACK_ID)

    @property
    def segment_id(self) -> str | None:
        return self.attributes.get(ATTR_SEGMENT_ID)

    @property
    def final(self) -> bool:
        return self.attributes.get(ATTR_FINAL) == "true"

    @property
    def complete(self) -> bool:
        return self.ended is not None


@dataclass(frozen=True, slots=True)
class RpcCall:
    """One user -> agent RPC, including every retry of the contract's loop."""

    method: str
    payload: str
    destination: str
    started: Stamp
    ended: Stamp
    attempts: int
    response: str | None = None
    error_code: int | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_code is None


@dataclass(frozen=True, slots=True)
class ParticipantEvent:
    """A remote participant seen at join (`present`), joining or leaving; or our disconnect."""

    kind: Literal["present", "joined", "left", "disconnected"]
    identity: str
    at: Stamp
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One microphone utterance: when its audio went out and where the speech in it lies.

    `speech_started`/`speech_ended` bound the non-silent samples of the WAV (espeak adds a
    little silence of its own), placed on the pacing clock: the instant the frame holding that
    sample was due. `speech_ended` is the mark for turn latency.
    """

    source: str
    duration: float
    started: Stamp
    speech_started: Stamp
    speech_ended: Stamp
    ended: Stamp


@dataclass(frozen=True, slots=True)
class AudioMark:
    """A received agent audio frame that was not silent."""

    at: Stamp
    rms: float


@dataclass(slots=True)
class Recording:
    """Everything received, in arrival order per kind; `changed()` wakes the waiters."""

    connected: Stamp | None = None
    states: list[StateChange] = field(default_factory=list)
    invalid_states: list[tuple[str, Stamp, str]] = field(default_factory=list)
    # Calls and streams that claimed to be the agent's but came from another participant
    # (identity, what): refused or dropped, never taken as the agent's.
    ignored: list[tuple[str, str]] = field(default_factory=list)
    transcripts: list[TranscriptStream] = field(default_factory=list)
    rpc_calls: list[RpcCall] = field(default_factory=list)
    participants: list[ParticipantEvent] = field(default_factory=list)
    utterances: list[Utterance] = field(default_factory=list)
    agent_audio_voiced: list[AudioMark] = field(default_factory=list)
    agent_audio_first_frame: Stamp | None = None
    _waiters: set[asyncio.Future[None]] = field(default_factory=set, repr=False)

    def changed(self) -> None:
        """Wake every waiter so it re-checks its condition."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._waiters.clear()

    async def wait_for(
        self,
        check: Callable[[], T | None],
        timeout: float,  # noqa: ASYNC109 - every wait in the API takes a timeout in seconds
        what: str,
    ) -> T:
        """Return `check()`'s first non-None value; TimeoutError naming `what` after `timeout`."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    result = check()
                    if result is not None:
                        return result
                    fut: asyncio.Future[None] = loop.create_future()
                    self._waiters.add(fut)
                    try:
                        await fut
                    finally:
                        self._waiters.discard(fut)
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the CLI's `--json-report`)."""

        def stamp(s: Stamp | None) -> dict[str, float] | None:
            return None if s is None else {"mono": s.mono, "wall_ms": s.wall_ms}

        return {
            "connected": stamp(self.connected),
            "states": [
                {
                    **s.event.model_dump(),
                    "caller": s.caller,
                    "received": stamp(s.received),
                    "latency_ms": s.latency_ms,
                }
                for s in self.states
            ],
            "invalid_states": [
                {"payload": p, "received": stamp(at), "error": err}
                for p, at, err in self.invalid_states
            ],
            "transcripts": [
                {
                    "participant": t.participant,
                    "stream_id": t.stream_id,
                    "attributes": t.attributes,
                    "text": t.text,
                    "chunks": t.chunks,
                    "final": t.final,
                    "segment_id": t.segment_id,
                    "track_id": t.track_id,
                    "started": stamp(t.started),
                    "sent_ms": t.sent_ms,
                    "ended": stamp(t.ended),
                    "error": t.error,
                }
                for t in self.transcripts
            ],
            "rpc_calls": [
                {**asdict(c), "started": stamp(c.started), "ended": stamp(c.ended)}
                for c in self.rpc_calls
            ],
            "participants": [
                {"kind": p.kind, "identity": p.identity, "at": stamp(p.at), "detail": p.detail}
                for p in self.participants
            ],
            "utterances": [
                {
                    "source": u.source,
                    "duration": u.duration,
                    "started": stamp(u.started),
                    "speech_started": stamp(u.speech_started),
                    "speech_ended": stamp(u.speech_ended),
                    "ended": stamp(u.ended),
                }
                for u in self.utterances
            ],
            "agent_audio_first_frame": stamp(self.agent_audio_first_frame),
            "agent_audio_voiced_frames": len(self.agent_audio_voiced),
        }

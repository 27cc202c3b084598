"""`SimulatedUser`: the browser frontend of the integration contract, driven from Python.

What it does, in the contract's order:

1. sets up room event listeners and the `lk.transcription` text stream handler, then connects;
2. registers `agent_state_changed` once, in the same event-loop step in which `connect()`
   returns (see `connect()` for why that is the earliest point the Python SDK allows);
3. finds the agent by the `agent` identity prefix and calls its RPC methods with the
   contract's retry (10 tries, 500 ms apart);
4. publishes a microphone track (WAV files or espeak-ng renders, paced in real time);
5. records state RPCs, transcription streams, the agent's audio, participants and
   disconnects (`simuser.recording`), with waits over them for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from livekit import rtc
from pydantic import BaseModel, ValidationError

from common.metadata import Faq
from common.protocol import (
    RPC_AGENT_STATE_CHANGED,
    RPC_GET_STATE,
    RPC_INTERRUPT,
    RPC_SEND_TEXT,
    RPC_SET_FAQS,
    RPC_SET_LANGUAGE,
    TRANSCRIPTION_TOPIC,
    AgentState,
    AgentStateEvent,
    AgentStatus,
    EmptyPayload,
    RpcErrorCode,
    SendTextPayload,
    SetFaqsPayload,
    SetLanguagePayload,
    is_agent_identity,
)

from .agent_audio import AgentAudioRecorder
from .audio import DEFAULT_SILENCE_RMS, Int16Array, load_wav
from .echo import EchoPath
from .microphone import Microphone
from .recording import (
    ParticipantEvent,
    Recording,
    RpcCall,
    Stamp,
    StateChange,
    TranscriptStream,
    Utterance,
)
from .speech import render_speech
from .token import DEFAULT_ROOM_PREFIX, TokenGrant, fetch_token

__all__ = ["RPC_ATTEMPTS", "RPC_RETRY_DELAY", "RpcCallError", "SimulatedUser"]

logger = logging.getLogger(__name__)

# The frontend contract's retry loop.
RPC_ATTEMPTS = 10
RPC_RETRY_DELAY = 0.5

# "agent", "user" or an exact participant identity.
Speaker = str


_CLOSE_STEP_TIMEOUT = 10.0


async def _bounded(step: Awaitable[None], what: str) -> None:
    try:
        async with asyncio.timeout(_CLOSE_STEP_TIMEOUT):
            await step
    except TimeoutError:
        logger.warning("%s took over %.0f s; going on", what, _CLOSE_STEP_TIMEOUT)


async def _drain(reader: rtc.TextStreamReader) -> None:
    """Read an ignored stream to its end, keeping nothing, so its chunks do not pile up."""
    try:
        async for _ in reader:
            pass
    except rtc.StreamError:
        pass  # the sender gave up; nothing was kept anyway


def _is_wav(what: Path | str) -> bool:
    """A `Path`, or a string naming a .wav file; any other string is text to speak."""
    return isinstance(what, Path) or str(what).lower().endswith(".wav")


class RpcCallError(Exception):
    """Every try of an RPC failed; carries the last `rtc.RpcError`'s code and message."""

    def __init__(self, method: str, code: int, message: str, attempts: int) -> None:
        super().__init__(f"{method} failed after {attempts} tries: {code} {message}")
        self.method = method
        self.code = code
        self.message = message
        self.attempts = attempts


class SimulatedUser:
    """One frontend user in one room. Use `async with` or `connect()` / `aclose()`."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        language: str = "en",
        rpc_attempts: int = RPC_ATTEMPTS,
        rpc_retry_delay: float = RPC_RETRY_DELAY,
        rpc_response_timeout: float | None = None,
        frame_ms: int = 20,
        keep_alive: bool = True,
        silence_threshold: float = DEFAULT_SILENCE_RMS,
        echo: EchoPath | None = None,
    ) -> None:
        self.url = url
        self.token = token
        self.language = language
        self.rpc_attempts = rpc_attempts
        self.rpc_retry_delay = rpc_retry_delay
        self.rpc_response_timeout = rpc_response_timeout
        self.grant: TokenGrant | None = None
        self.recording = Recording()
        self.room = rtc.Room()
        # `echo`: the agent's voice comes back into the microphone, as from a page's speakers.
        self.microphone = Microphone(
            frame_ms=frame_ms, keep_alive=keep_alive, silence_threshold=silence_threshold, echo=echo
        )
        self.agent_audio = AgentAudioRecorder(
            self.recording, silence_threshold=silence_threshold, echo=echo
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._state_handler_registered = False
        self._closed = False

    @classmethod
    async def from_token_server(
        cls,
        token_url: str,
        *,
        language: str = "en",
        faqs: Sequence[Faq] = (),
        room: str | None = None,
        identity: str | None = None,
        room_prefix: str = DEFAULT_ROOM_PREFIX,
        **kwargs: Any,
    ) -> SimulatedUser:
        """Get a token as the browser does; the user is not connected yet."""
        grant = await fetch_token(
            token_url,
            room=room,
            identity=identity,
            language=language,
            faqs=faqs,
            room_prefix=room_prefix,
        )
        user = cls(grant.url, grant.token, language=language, **kwargs)
        user.grant = grant
        return user

    # ---- connection ---------------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return self.room.local_participant.identity

    async def connect(self, *, timeout: float = 20.0) -> None:  # noqa: ASYNC109
        """Listen, connect, register `agent_state_changed`.

        The contract registers the state handler before the agent can call it. The Python SDK
        only creates the local participant inside `Room.connect()`, so the handler is
        registered in the very step `connect()` returns in, before anything else awaits: the
        room's event task has not run yet, and the agent, which only calls after it has seen
        this participant join, meets the method registered.
        """
        room = self.room
        room.on("participant_connected", self._on_participant_connected)
        room.on("participant_disconnected", self._on_participant_disconnected)
        room.on("track_subscribed", self._on_track_subscribed)
        room.on("track_unsubscribed", self._on_track_unsubscribed)
        room.on("disconnected", self._on_disconnected)
        room.register_text_stream_handler(TRANSCRIPTION_TOPIC, self._on_text_stream)
        async with asyncio.timeout(timeout):
            await room.connect(self.url, self.token, rtc.RoomOptions(auto_subscribe=True))
            self._register_state_handler()
        now = Stamp.now()
        self.recording.connected = now
        for participant in room.remote_participants.values():
            self.recording.participants.append(
                ParticipantEvent("present", participant.identity, now)
            )
        logger.info("connected to room %s as %s", room.name, self.identity)
        self.recording.changed()

    def _register_state_handler(self) -> None:
        if self._state_handler_registered:
            return
        self.room.local_participant.register_rpc_method(
            RPC_AGENT_STATE_CHANGED, self._on_agent_state_changed
        )
        self._state_handler_registered = True

    async def aclose(self) -> None:
        """Stop the microphone and audio readers, disconnect, wait for every task."""
        if self._closed:
            return
        self._closed = True
        # Each step is bounded: a close that hangs in the SDK must not hang a test or benchmark.
        await _bounded(self.microphone.aclose(), "stopping the microphone")
        await _bounded(self.agent_audio.aclose(), "closing the agent audio")
        if self.room.isconnected():
            await _bounded(self.room.disconnect(), "disconnecting")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.room.unregister_text_stream_handler(TRANSCRIPTION_TOPIC)
        self.room.off("participant_connected", self._on_participant_connected)
        self.room.off("participant_disconnected", self._on_participant_disconnected)
        self.room.off("track_subscribed", self._on_track_subscribed)
        self.room.off("track_unsubscribed", self._on_track_unsubscribed)
        self.room.off("disconnected", self._on_disconnected)

    async def __aenter__(self) -> SimulatedUser:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    # ---- what the agent sends -----------------------------------------------------------------

    def _is_agent(self, identity: str) -> bool:
        """Whether `identity` is the agent: its prefix, and the server says it is an agent.

        The prefix alone is not proof: the token server refuses it, but a participant joining
        with a token from elsewhere could carry it; the participant kind is set by the server
        from the token's grants, which only the agent framework's tokens carry.
        """
        participant = self.room.remote_participants.get(identity)
        return (
            participant is not None
            and is_agent_identity(identity)
            and participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        )

    def _ignore(self, identity: str, what: str) -> None:
        logger.warning("ignored %s from %r: not the agent", what, identity)
        self.recording.ignored.append((identity, what))
        self.recording.changed()

    async def _on_agent_state_changed(self, data: rtc.RpcInvocationData) -> str:
        received = Stamp.now()
        if data.caller_identity not in self.room.remote_participants:
            # Its call overtook its join (e.g. both sides reconnecting): not refused, retried.
            raise rtc.RpcError(int(RpcErrorCode.NOT_READY), "caller not known yet; retry")
        if not self._is_agent(data.caller_identity):
            self._ignore(data.caller_identity, RPC_AGENT_STATE_CHANGED)
            raise rtc.RpcError(int(RpcErrorCode.FORBIDDEN), "only the agent may call this")
        try:
            event = AgentStateEvent.model_validate_json(data.payload)
        except ValidationError as exc:
            self.recording.invalid_states.append((data.payload, received, str(exc)))
            self.recording.changed()
            logger.warning("invalid agent_state_changed payload %r: %s", data.payload, exc)
            raise rtc.RpcError(
                int(RpcErrorCode.INVALID_PAYLOAD), "invalid agent_state_changed payload"
            ) from exc
        self.recording.states.append(StateChange(event, data.caller_identity, received))
        self.recording.changed()
        logger.debug("agent state %s (seq %d)", event.state, event.seq)
        return ""

    def _on_text_stream(self, reader: rtc.TextStreamReader, participant_identity: str) -> None:
        # The agent sends both sides: its own speech, and the user's as the user (only an agent
        # may send on another's behalf; livekit-server stamps anyone else's own identity).
        own = self.room.local_participant.identity
        if participant_identity != own and not self._is_agent(participant_identity):
            self._ignore(participant_identity, TRANSCRIPTION_TOPIC)
            self._spawn(_drain(reader), name=f"simuser-drain-{reader.info.stream_id}")
            return
        self._spawn(
            self._read_text_stream(reader, participant_identity),
            name=f"simuser-transcript-{reader.info.stream_id}",
        )

    async def _read_text_stream(self, reader: rtc.TextStreamReader, identity: str) -> None:
        info = reader.info
        stream = TranscriptStream(
            participant=identity,
            stream_id=info.stream_id,
            attributes=dict(info.attributes or {}),
            started=Stamp.now(),
            sent_ms=info.timestamp,
        )
        self.recording.transcripts.append(stream)
        self.recording.changed()
        try:
            async for chunk in reader:
                stream.text += chunk
                stream.chunks += 1
                self.recording.changed()
        except rtc.StreamError as exc:
            stream.error = str(exc)
        stream.attributes = dict(reader.info.attributes or {})
        stream.ended = Stamp.now()
        self.recording.changed()

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        self.recording.participants.append(
            ParticipantEvent("joined", participant.identity, Stamp.now())
        )
        self.recording.changed()

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        self.recording.participants.append(
            ParticipantEvent("left", participant.identity, Stamp.now())
        )
        self.recording.changed()

    def _on_track_subscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if isinstance(track, rtc.RemoteAudioTrack) and self._is_agent(participant.identity):
            self.agent_audio.attach(track)

    def _on_track_unsubscribed(
        self,
        track: rtc.Track,
        publication: rtc.RemoteTrackPublication,
        participant: rtc.RemoteParticipant,
    ) -> None:
        if isinstance(track, rtc.RemoteAudioTrack):
            self._spawn(self.agent_audio.detach(track.sid), name=f"simuser-detach-{track.sid}")

    def _on_disconnected(self, reason: int) -> None:
        detail = rtc.DisconnectReason.Name(rtc.DisconnectReason.ValueType(reason))
        self.recording.participants.append(
            ParticipantEvent("disconnected", "", Stamp.now(), detail=detail)
        )
        self.recording.changed()

    # ---- the agent and its RPC methods --------------------------------------------------------

    @property
    def agent_identity(self) -> str | None:
        """The first remote participant that is the agent (prefix and kind), as the page does."""
        for identity in self.room.remote_participants:
            if self._is_agent(identity):
                return identity
        return None

    async def wait_for_agent(self, timeout: float = 20.0) -> str:  # noqa: ASYNC109
        return await self.recording.wait_for(
            lambda: self.agent_identity, timeout, "an agent participant"
        )

    async def call(
        self,
        method: str,
        payload: BaseModel | Mapping[str, Any] | str = "{}",
        *,
        agent_timeout: float = 20.0,
    ) -> str:
        """Call an agent RPC method with the contract's retry; return the response payload.

        Raises `RpcCallError` with the last `rtc.RpcError` when every try failed, and
        `TimeoutError` when no agent joined within `agent_timeout`.
        """
        destination = await self.wait_for_agent(agent_timeout)
        if isinstance(payload, BaseModel):
            body = payload.model_dump_json()
        elif isinstance(payload, str):
            body = payload
        else:
            body = json.dumps(payload, ensure_ascii=False)
        started = Stamp.now()
        last: rtc.RpcError | None = None
        for attempt in range(1, self.rpc_attempts + 1):
            try:
                response = await self.room.local_participant.perform_rpc(
                    destination_identity=destination,
                    method=method,
                    payload=body,
                    response_timeout=self.rpc_response_timeout,
                )
            except rtc.RpcError as exc:
                last = exc
                logger.debug("%s try %d failed: %s %s", method, attempt, exc.code, exc.message)
                if attempt < self.rpc_attempts:
                    await asyncio.sleep(self.rpc_retry_delay)
                continue
            self._record_call(method, body, destination, started, attempt, response=response)
            return response
        assert last is not None
        self._record_call(method, body, destination, started, self.rpc_attempts, error=last)
        raise RpcCallError(method, last.code, last.message, self.rpc_attempts)

    def _record_call(
        self,
        method: str,
        body: str,
        destination: str,
        started: Stamp,
        attempts: int,
        *,
        response: str | None = None,
        error: rtc.RpcError | None = None,
    ) -> None:
        self.recording.rpc_calls.append(
            RpcCall(
                method=method,
                payload=body,
                destination=destination,
                started=started,
                ended=Stamp.now(),
                attempts=attempts,
                response=response,
                error_code=error.code if error else None,
                error_message=error.message if error else None,
            )
        )
        self.recording.changed()

    async def send_text(self, text: str) -> str:
        return await self.call(RPC_SEND_TEXT, SendTextPayload(text=text))

    async def set_language(self, language: str) -> str:
        response = await self.call(RPC_SET_LANGUAGE, SetLanguagePayload(language=language))
        self.language = language
        return response

    async def set_faqs(self, faqs: Sequence[Faq]) -> str:
        return await self.call(RPC_SET_FAQS, SetFaqsPayload(faqs=list(faqs)))

    async def interrupt(self) -> str:
        return await self.call(RPC_INTERRUPT, EmptyPayload())

    async def get_state(self) -> AgentStatus:
        return AgentStatus.model_validate_json(await self.call(RPC_GET_STATE, EmptyPayload()))

    # ---- microphone ---------------------------------------------------------------------------

    async def publish_microphone(self) -> str:
        """Publish the microphone track (silence until something is said); return its sid."""
        publication = await self.microphone.publish(self.room.local_participant)
        return publication.sid

    async def say(
        self,
        what: Path | str,
        *,
        language: str | None = None,
        lead_silence: float = 0.0,
        trail_silence: float = 0.0,
    ) -> Utterance:
        """Speak a WAV file (a `Path`, or a string ending in .wav) or a text (espeak-ng).

        Returns once the audio has gone out; `Utterance.speech_ended` is the end of the
        non-silent part, the mark for turn latency.
        """
        if not self.microphone.published:
            await self.publish_microphone()
        if _is_wav(what):
            wav = Path(what)
        else:
            wav = await render_speech(str(what), language or self.language)
        samples = await asyncio.to_thread(load_wav, wav)
        return await self.play(
            samples, source=str(what), lead_silence=lead_silence, trail_silence=trail_silence
        )

    async def play(
        self,
        samples: Int16Array,
        *,
        source: str,
        lead_silence: float = 0.0,
        trail_silence: float = 0.0,
    ) -> Utterance:
        """Speak audio already loaded (48 kHz mono int16): what load tests use, so that one
        render of a question serves every simulated user without reading or converting it again.
        """
        if not self.microphone.published:
            await self.publish_microphone()
        utterance = await self.microphone.play(
            samples, source=source, lead_silence=lead_silence, trail_silence=trail_silence
        )
        self.recording.utterances.append(utterance)
        self.recording.changed()
        return utterance

    # ---- waits --------------------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        return max((s.event.seq for s in self.recording.states), default=0)

    async def wait_for_state(
        self,
        state: AgentState,
        *,
        after_seq: int = 0,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> StateChange:
        """The first received state change to `state` with seq > `after_seq`."""

        def check() -> StateChange | None:
            for change in self.recording.states:
                if change.event.seq > after_seq and change.event.state == state:
                    return change
            return None

        return await self.recording.wait_for(
            check, timeout, f"agent state {state!r} after seq {after_seq}"
        )

    def _is_speaker(self, stream: TranscriptStream, speaker: Speaker) -> bool:
        if speaker == "agent":
            return is_agent_identity(stream.participant)
        if speaker == "user":
            own = self.room.local_participant.identity if self.room.isconnected() else None
            mic = self.microphone.track_sid
            return stream.participant == own or (mic is not None and stream.track_id == mic)
        return stream.participant == speaker

    def transcripts(
        self,
        *,
        speaker: Speaker | None = None,
        final: bool | None = None,
        after: Stamp | None = None,
    ) -> list[TranscriptStream]:
        """Recorded transcription streams (those with `lk.transcribed_track_id`), filtered."""
        return [
            s
            for s in self.recording.transcripts
            if s.is_transcription
            and (speaker is None or self._is_speaker(s, speaker))
            and (final is None or (s.complete and s.final == final))
            and (after is None or s.started.mono > after.mono)
        ]

    async def wait_for_transcript(
        self,
        *,
        speaker: Speaker = "agent",
        final: bool | None = True,
        after: Stamp | None = None,
        contains: str | None = None,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> TranscriptStream:
        """The first complete transcription stream matching all the given filters."""
        needle = contains.lower() if contains else None

        def check() -> TranscriptStream | None:
            for s in self.transcripts(speaker=speaker, final=final, after=after):
                if s.complete and (needle is None or needle in s.text.lower()):
                    return s
            return None

        what = f"a {'final ' if final else ''}transcript from {speaker}"
        return await self.recording.wait_for(check, timeout, what)

    async def first_agent_audio_after(self, mark: Stamp, *, timeout: float = 30.0) -> Stamp:  # noqa: ASYNC109
        """Arrival of the first non-silent agent audio frame after `mark` (waits for it)."""
        return await self.recording.wait_for(
            lambda: self.agent_audio.first_voiced_after(mark), timeout, "agent audio"
        )

    async def save_agent_audio(self, path: Path) -> Path:
        return await self.agent_audio.save(path)

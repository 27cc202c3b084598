"""OpenAI's realtime transcription protocol (the subset livekit-plugins-openai uses), per socket.

Client events: `session.update` (transcription session: model, language, prompt, optional
`server_vad` turn detection), `input_audio_buffer.append` (base64 PCM16 24 kHz mono),
`input_audio_buffer.commit`, `input_audio_buffer.clear`. Server events: `session.created` /
`session.updated`, `input_audio_buffer.speech_started` / `speech_stopped` (only with server VAD),
`input_audio_buffer.committed`, `conversation.item.input_audio_transcription.delta` while the
audio arrives, `...completed` at the commit, and `error` for a bad client event (the socket stays
open, as OpenAI's does).

Recognition is incremental: each chunk goes to the recogniser as it arrives, and the words two
successive partial hypotheses agree on go out as deltas. Leading silence is not decoded: an
utterance starts at the first chunk above an energy floor (with a short pre-roll), so a silent
open socket costs almost nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import av
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ApiError
from .faults import FaultInjector
from .recognition import RecogniserFactory, StreamingRecogniser, stable_words

__all__ = ["INPUT_RATE", "RealtimeSessions", "TranscriptionSession"]

logger = logging.getLogger(__name__)

INPUT_RATE = 24000  # OpenAI's realtime audio/pcm: 24 kHz mono int16 little-endian
_MS_PER_BYTE = 1000 / (INPUT_RATE * 2)
# Chunks louder than this (dBFS RMS) start an utterance; digital and line silence are far below.
VOICE_FLOOR_DBFS = -45.0
PRE_ROLL_MS = 300
# OpenAI refuses to commit less than 100 ms of audio.
MIN_COMMIT_MS = 100
# Chunks waiting for the recogniser; a full queue stops reading the socket (back-pressure).
QUEUE_CHUNKS = 400
SUPPORTED_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class ProtocolError(Exception):
    """A client event we refuse; becomes an `error` event, the socket stays open."""

    def __init__(self, message: str, *, code: str = "invalid_value", param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AudioFormat(_Lenient):
    type: str = "audio/pcm"
    rate: int = INPUT_RATE


class Transcription(_Lenient):
    model: str | None = None
    language: str | None = None
    languages: list[str] = Field(default_factory=list)
    prompt: str | None = None


class TurnDetection(_Lenient):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    silence_duration_ms: int = Field(default=500, ge=0, le=10_000)
    prefix_padding_ms: int = Field(default=300, ge=0, le=10_000)


class AudioInput(_Lenient):
    format: AudioFormat | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None


class Audio(_Lenient):
    input: AudioInput | None = None


class SessionConfig(_Lenient):
    type: Literal["transcription"] = "transcription"
    audio: Audio | None = None


class SessionUpdate(_Lenient):
    session: SessionConfig


class Append(_Lenient):
    audio: str


def _event_id() -> str:
    return f"event_{uuid.uuid4().hex[:20]}"


def _item_id() -> str:
    return f"item_{uuid.uuid4().hex[:20]}"


def _dbfs(pcm: np.ndarray) -> float:
    if pcm.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    return float(20 * np.log10(max(rms, 1e-6) / 32768))


class _Resampler:
    """24 kHz -> the recogniser's rate, stateful across chunk boundaries (PyAV/FFmpeg)."""

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)

    def __call__(self, pcm: np.ndarray) -> bytes:
        if self._rate == INPUT_RATE:
            return pcm.tobytes()
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = INPUT_RATE
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype("<i2").tobytes() if out else b""


class TranscriptionSession:
    """One WebSocket's state: config, the audio buffer bookkeeping and the recogniser worker.

    The socket reader calls `handle`; a single worker task does every recogniser call (in a
    thread) in arrival order, so the recogniser is never used concurrently. `aclose` stops the
    worker and waits for the recogniser's running call before closing it: nothing outlives the
    socket.
    """

    def __init__(
        self,
        *,
        factory: RecogniserFactory,
        faults: FaultInjector,
        send: Send,
        non_english: Literal["empty", "english"] = "empty",
    ) -> None:
        self._factory = factory
        self._faults = faults
        self._send = send
        self._non_english = non_english
        self._transcription = Transcription()
        self._turn_detection: TurnDetection | None = None
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(QUEUE_CHUNKS)
        self._worker = asyncio.create_task(self._work(), name="realtime-recogniser")
        self._inflight: asyncio.Future[Any] | None = None
        self._recogniser: StreamingRecogniser | None = None
        self._resampler: _Resampler | None = None
        # Buffer bookkeeping on the reader's side (milliseconds of session audio).
        self._audio_ms = 0.0
        self._buffer_ms = 0.0
        self._pre_roll: deque[np.ndarray] = deque()
        self._item_id: str | None = None
        self._previous_item: str | None = None
        self._speech_started_ms: float | None = None
        self._silence_ms = 0.0
        # Worker side: the utterance being decoded and the words already sent as deltas.
        self._utterance_open = False
        self._partial = ""
        self._sent: list[str] = []
        self.closed = False

    # --- reader side -----------------------------------------------------------------------
    async def start(self) -> None:
        await self._emit("session.created", session=self._session_view())

    async def handle(self, raw: str | bytes) -> None:
        """One client frame; a bad one is answered with an `error` event."""
        client_event_id: str | None = None
        try:
            if isinstance(raw, bytes):
                raise ProtocolError("binary frames are not supported; send JSON text events")
            try:
                event = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ProtocolError(f"invalid JSON: {exc.msg}", code="invalid_json") from None
            if not isinstance(event, dict):
                raise ProtocolError("an event must be a JSON object", code="invalid_json")
            given_id = event.get("event_id")
            client_event_id = given_id if isinstance(given_id, str) else None
            kind = event.get("type")
            if kind not in SUPPORTED_EVENTS:
                raise ProtocolError(
                    f"Invalid value: {str(kind)[:64]!r}. Supported values are: "
                    + ", ".join(repr(e) for e in SUPPORTED_EVENTS),
                    param="type",
                )
            if kind == "session.update":
                await self._on_session_update(event)
            elif kind == "input_audio_buffer.append":
                await self._on_append(event)
            elif kind == "input_audio_buffer.commit":
                await self._on_commit()
            else:
                await self._on_clear()
        except ProtocolError as exc:
            logger.info("realtime: refused a client event: %s", exc.message)
            await self._emit(
                "error",
                error={
                    "type": "invalid_request_error",
                    "code": exc.code,
                    "message": exc.message,
                    "param": exc.param,
                    "event_id": client_event_id,
                },
            )

    async def _on_session_update(self, event: dict[str, Any]) -> None:
        try:
            update = SessionUpdate.model_validate(event)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ProtocolError(f"{where}: {err['msg']}", param=where) from None
        audio_in = update.session.audio.input if update.session.audio else None
        if audio_in is not None:
            fmt = audio_in.format
            if fmt is not None and (fmt.type != "audio/pcm" or fmt.rate != INPUT_RATE):
                raise ProtocolError(
                    f"only audio/pcm at {INPUT_RATE} Hz is supported",
                    param="session.audio.input.format",
                )
            if audio_in.transcription is not None:
                self._transcription = audio_in.transcription
                await self._queue.put(("prompt", self._transcription.prompt))
            # A field left out keeps its value; turn detection is sent only by models that
            # have server VAD, so its presence switches server VAD on.
            if "turn_detection" in audio_in.model_fields_set:
                self._turn_detection = audio_in.turn_detection
        await self._emit("session.updated", session=self._session_view())

    async def _on_append(self, event: dict[str, Any]) -> None:
        try:
            audio = base64.b64decode(Append.model_validate(event).audio, validate=True)
        except (ValidationError, binascii.Error, ValueError):
            raise ProtocolError("audio must be base64-encoded PCM16", param="audio") from None
        if len(audio) % 2:
            raise ProtocolError("audio must be whole 16-bit samples", param="audio")
        pcm = np.frombuffer(audio, dtype="<i2")
        chunk_ms = len(audio) * _MS_PER_BYTE
        start_ms = self._audio_ms
        self._audio_ms += chunk_ms
        self._buffer_ms += chunk_ms
        voiced = _dbfs(pcm) > VOICE_FLOOR_DBFS
        if self._item_id is None:
            self._pre_roll.append(pcm)
            while sum(len(c) for c in self._pre_roll) * 2 * _MS_PER_BYTE > PRE_ROLL_MS:
                self._pre_roll.popleft()
            if not voiced:
                return
            # Speech: the utterance (and its item) begins, pre-roll first.
            self._item_id = _item_id()
            self._speech_started_ms = start_ms
            self._silence_ms = 0.0
            if self._turn_detection is not None:
                padding = self._turn_detection.prefix_padding_ms
                await self._emit(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=int(max(0.0, start_ms - padding)),
                    item_id=self._item_id,
                )
            chunks = list(self._pre_roll)
            self._pre_roll.clear()
            await self._queue.put(("audio", (self._item_id, np.concatenate(chunks))))
            return
        await self._queue.put(("audio", (self._item_id, pcm)))
        if self._turn_detection is None:
            return
        self._silence_ms = 0.0 if voiced else self._silence_ms + chunk_ms
        if self._silence_ms >= self._turn_detection.silence_duration_ms:
            await self._emit(
                "input_audio_buffer.speech_stopped",
                audio_end_ms=int(self._audio_ms - self._silence_ms),
                item_id=self._item_id,
            )
            await self._commit()

    async def _on_commit(self) -> None:
        if self._buffer_ms < MIN_COMMIT_MS:
            raise ProtocolError(
                f"buffer too small: expected at least {MIN_COMMIT_MS}ms of audio, "
                f"but buffer only has {self._buffer_ms:.2f}ms of audio",
                code="input_audio_buffer_commit_empty",
            )
        await self._commit()

    async def _commit(self) -> None:
        item_id = self._item_id or _item_id()
        await self._emit(
            "input_audio_buffer.committed", previous_item_id=self._previous_item, item_id=item_id
        )
        await self._queue.put(("commit", (item_id, self._buffer_ms)))
        self._previous_item = item_id
        self._reset_buffer()

    async def _on_clear(self) -> None:
        await self._queue.put(("clear", None))
        self._reset_buffer()
        await self._emit("input_audio_buffer.cleared")

    def _reset_buffer(self) -> None:
        self._buffer_ms = 0.0
        self._item_id = None
        self._pre_roll.clear()
        self._speech_started_ms = None
        self._silence_ms = 0.0

    # --- worker side -----------------------------------------------------------------------
    def _hears(self) -> bool:
        codes = [self._transcription.language] if self._transcription.language else []
        codes += self._transcription.languages
        english = not codes or any(c.lower().split("-")[0] == "en" for c in codes)
        return english or self._non_english == "english"

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a recogniser call in a thread; on cancellation the call still finishes first."""
        self._inflight = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        return await asyncio.shield(self._inflight)

    async def _work(self) -> None:
        while True:
            kind, payload = await self._queue.get()
            try:
                await self._step(kind, payload)
            except Exception as exc:  # a recogniser failure must not stall the socket
                logger.exception("realtime: recognition failed")
                await self._emit(
                    "error",
                    error={"type": "server_error", "code": None, "param": None,
                           "message": f"recognition failed: {type(exc).__name__}",
                           "event_id": None},
                )  # fmt: skip

    async def _step(self, kind: str, payload: Any) -> None:
        if kind == "prompt":
            if self._recogniser is not None:
                self._recogniser.set_prompt(payload)
        elif kind == "audio":
            await self._recognise(*payload)
        elif kind == "commit":
            await self._complete(*payload)
        elif kind == "clear" and self._utterance_open and self._recogniser is not None:
            await self._blocking(self._recogniser.finish)
            self._utterance_open, self._partial, self._sent = False, "", []

    async def _recognise(self, item_id: str, pcm: np.ndarray) -> None:
        if not self._hears():
            return
        if self._recogniser is None:
            self._recogniser = await self._blocking(self._factory.open)
            self._recogniser.set_prompt(self._transcription.prompt)
            self._resampler = _Resampler(self._recogniser.sample_rate)
        recogniser, resampler = self._recogniser, self._resampler
        assert resampler is not None
        self._utterance_open = True
        current: str = await self._blocking(lambda: recogniser.accept(resampler(pcm)))
        stable = stable_words(self._partial, current)
        self._partial = current
        sent = self._sent
        # Deltas only append: a revision of words already sent waits for the final.
        if len(stable) > len(sent) and stable[: len(sent)] == sent:
            delta = (" " if sent else "") + " ".join(stable[len(sent) :])
            self._sent = stable
            await self._emit(
                "conversation.item.input_audio_transcription.delta",
                item_id=item_id,
                content_index=0,
                delta=delta,
            )

    async def _complete(self, item_id: str, duration_ms: float) -> None:
        text = ""
        if self._utterance_open and self._recogniser is not None:
            text = await self._blocking(self._recogniser.finish)
        self._utterance_open, self._partial, self._sent = False, "", []
        try:
            await self._faults.apply("stt")
        except ApiError as exc:
            await self._emit(
                "error",
                error={"type": exc.type, "code": exc.code, "message": exc.message,
                       "param": None, "event_id": None},
            )  # fmt: skip
            return
        logger.debug("realtime: %s completed after %d ms of audio: %r", item_id, duration_ms, text)
        await self._emit(
            "conversation.item.input_audio_transcription.completed",
            item_id=item_id,
            content_index=0,
            transcript=text,
            usage={"type": "duration", "seconds": round(duration_ms / 1000, 3)},
        )

    # --- both ------------------------------------------------------------------------------
    def _session_view(self) -> dict[str, Any]:
        return {
            "type": "transcription",
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": INPUT_RATE},
                    "transcription": self._transcription.model_dump(exclude_none=True),
                    "turn_detection": (
                        self._turn_detection.model_dump() if self._turn_detection else None
                    ),
                }
            },
        }

    async def _emit(self, kind: str, **fields: Any) -> None:
        await self._send({"type": kind, "event_id": _event_id(), **fields})

    async def aclose(self) -> None:
        """Stop recognising: cancel the worker, let a running call end, release the engine."""
        self.closed = True
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._worker
        if self._inflight is not None:
            with contextlib.suppress(BaseException):
                await self._inflight
        if self._recogniser is not None:
            recogniser, self._recogniser = self._recogniser, None
            await asyncio.to_thread(recogniser.close)


class RealtimeSessions:
    """The app's open transcription sockets (for the log and the tests: none may linger)."""

    def __init__(self) -> None:
        self.open: set[TranscriptionSession] = set()

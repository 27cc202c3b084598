"""The simulated microphone: one published audio track fed at real-time pace.

A single pump task pushes one frame per period through `rtc.AudioSource`. Queued utterances
are played in order; between them it pushes silence when `keep_alive` is on, so the agent's VAD
sees a live, quiet microphone (as a browser's would) rather than a track with no packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass

import numpy as np
from livekit import rtc

from .audio import (
    DEFAULT_SILENCE_RMS,
    SAMPLE_RATE,
    Int16Array,
    RealTimePacer,
    frames_of,
    silence,
    voiced_span,
)
from .echo import EchoPath
from .recording import Stamp, Utterance

__all__ = ["FRAME_MS_CHOICES", "Microphone"]

logger = logging.getLogger(__name__)

FRAME_MS_CHOICES = (10, 20)
TRACK_NAME = "microphone"


@dataclass(slots=True)
class _Job:
    source: str
    frames: list[Int16Array]
    duration: float
    speech_offsets: tuple[float, float]
    done: asyncio.Future[Utterance]
    index: int = 0
    started: Stamp | None = None


class Microphone:
    """Publishes a microphone track and plays int16 48 kHz mono audio into it in real time."""

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        keep_alive: bool = True,
        silence_threshold: float = DEFAULT_SILENCE_RMS,
        echo: EchoPath | None = None,
    ) -> None:
        if frame_ms not in FRAME_MS_CHOICES:
            raise ValueError(f"frame_ms must be one of {FRAME_MS_CHOICES}")
        self.frame_ms = frame_ms
        self.keep_alive = keep_alive
        self.silence_threshold = silence_threshold
        self.echo = echo
        self._frame_samples = SAMPLE_RATE * frame_ms // 1000
        self._period = frame_ms / 1000
        self._pacer = RealTimePacer(self._period)
        self._queue: deque[_Job] = deque()
        self._source: rtc.AudioSource | None = None
        self._track: rtc.LocalAudioTrack | None = None
        self._publication: rtc.LocalTrackPublication | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def track_sid(self) -> str | None:
        return self._publication.sid if self._publication else None

    @property
    def published(self) -> bool:
        return self._publication is not None

    async def publish(self, participant: rtc.LocalParticipant) -> rtc.LocalTrackPublication:
        if self._publication is not None:
            return self._publication
        self._source = rtc.AudioSource(SAMPLE_RATE, 1, queue_size_ms=200)
        self._track = rtc.LocalAudioTrack.create_audio_track(TRACK_NAME, self._source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        self._publication = await participant.publish_track(self._track, options)
        logger.info("microphone published (track %s)", self._publication.sid)
        self._ensure_pump()
        return self._publication

    async def play(
        self,
        samples: Int16Array,
        *,
        source: str,
        lead_silence: float = 0.0,
        trail_silence: float = 0.0,
    ) -> Utterance:
        """Queue `samples` (with optional silence around) and return once they have gone out."""
        if self._source is None or self._closed:
            raise RuntimeError("publish the microphone before playing audio")
        span = voiced_span(samples, threshold=self.silence_threshold) or (0.0, 0.0)
        full: Int16Array = np.concatenate([silence(lead_silence), samples, silence(trail_silence)])
        job = _Job(
            source=source,
            frames=frames_of(full, self._frame_samples),
            duration=full.size / SAMPLE_RATE,
            speech_offsets=(lead_silence + span[0], lead_silence + span[1]),
            done=asyncio.get_running_loop().create_future(),
        )
        self._queue.append(job)
        self._ensure_pump()
        utterance = await job.done
        remaining = utterance.ended.mono - Stamp.now().mono
        if remaining > 0:
            await asyncio.sleep(remaining)
        return utterance

    def _ensure_pump(self) -> None:
        if self._closed or self._source is None:
            return
        if self._pump is None or self._pump.done():
            if not self.keep_alive and not self._queue:
                return
            self._pump = asyncio.create_task(self._run(), name="simuser-microphone")
            self._pump.add_done_callback(self._pump_done)

    @staticmethod
    def _pump_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("microphone pump failed", exc_info=task.exception())

    async def _run(self) -> None:
        assert self._source is not None
        source = self._source
        quiet = silence(self._period)
        self._pacer.reset()
        try:
            while True:
                job = self._queue[0] if self._queue else None
                if job is None and not self.keep_alive:
                    return
                chunk = quiet if job is None else job.frames[job.index]
                if self.echo is not None:
                    chunk = self.echo.process(chunk)
                deadline = await self._pacer.next_deadline()
                now = Stamp.now()
                due = now.shifted(deadline - now.mono)
                frame = rtc.AudioFrame(chunk.tobytes(), SAMPLE_RATE, 1, chunk.size)
                await source.capture_frame(frame)
                if job is not None:
                    self._advance(job, due)
        finally:
            self._fail_pending()

    def _advance(self, job: _Job, due: Stamp) -> None:
        if job.started is None:
            job.started = due
        job.index += 1
        if job.index < len(job.frames):
            return
        self._queue.popleft()
        started = job.started
        utterance = Utterance(
            source=job.source,
            duration=job.duration,
            started=started,
            speech_started=started.shifted(job.speech_offsets[0]),
            speech_ended=started.shifted(job.speech_offsets[1]),
            ended=due.shifted(self._period),
        )
        if not job.done.done():
            job.done.set_result(utterance)

    def _fail_pending(self) -> None:
        if self._closed:
            while self._queue:
                job = self._queue.popleft()
                if not job.done.done():
                    job.done.set_exception(RuntimeError("microphone closed"))

    async def aclose(self) -> None:
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
            self._pump = None
        self._fail_pending()
        if self._source is not None:
            await self._source.aclose()
            self._source = None

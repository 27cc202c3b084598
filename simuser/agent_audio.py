"""Receive the agent's audio: keep every frame for a WAV and stamp the non-silent ones."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from pathlib import Path

import numpy as np
from livekit import rtc

from .audio import DEFAULT_SILENCE_RMS, SAMPLE_RATE, Int16Array, rms, save_wav
from .echo import EchoPath
from .recording import AudioMark, Recording, Stamp

__all__ = ["AgentAudioRecorder"]

logger = logging.getLogger(__name__)


class AgentAudioRecorder:
    """Reads each subscribed agent audio track through an `rtc.AudioStream` (48 kHz mono).

    Frames are stamped on arrival; frames above `silence_threshold` RMS go to
    `recording.agent_audio_voiced`, which `first_voiced_after()` searches.
    """

    def __init__(
        self,
        recording: Recording,
        *,
        silence_threshold: float = DEFAULT_SILENCE_RMS,
        echo: EchoPath | None = None,
    ) -> None:
        self.recording = recording
        self.silence_threshold = silence_threshold
        self.echo = echo
        self._chunks: list[Int16Array] = []
        self._streams: dict[str, tuple[rtc.AudioStream, asyncio.Task[None]]] = {}

    @property
    def samples(self) -> Int16Array:
        if not self._chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._chunks)

    @property
    def duration(self) -> float:
        return sum(c.size for c in self._chunks) / SAMPLE_RATE

    def attach(self, track: rtc.RemoteAudioTrack) -> None:
        if track.sid in self._streams:
            return
        stream = rtc.AudioStream(track, sample_rate=SAMPLE_RATE, num_channels=1)
        task = asyncio.create_task(self._read(stream), name=f"simuser-agent-audio-{track.sid}")
        task.add_done_callback(self._read_done)
        self._streams[track.sid] = (stream, task)
        logger.info("recording agent audio track %s", track.sid)

    async def detach(self, sid: str) -> None:
        entry = self._streams.pop(sid, None)
        if entry is None:
            return
        stream, task = entry
        await stream.aclose()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    @staticmethod
    def _read_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("reading agent audio failed", exc_info=task.exception())

    async def _read(self, stream: rtc.AudioStream) -> None:
        async for event in stream:
            at = Stamp.now()
            frame = event.frame
            data: Int16Array = np.frombuffer(frame.data, dtype=np.int16).copy()
            self._chunks.append(data)
            if self.echo is not None:
                self.echo.far_end(data)
            rec = self.recording
            if rec.agent_audio_first_frame is None:
                rec.agent_audio_first_frame = at
                rec.changed()
            level = rms(data)
            if level > self.silence_threshold:
                rec.agent_audio_voiced.append(AudioMark(at=at, rms=level))
                rec.changed()

    def first_voiced_after(self, mark: Stamp) -> Stamp | None:
        # Marks are appended in arrival order; a binary search keeps this cheap when waiters
        # re-check on every voiced frame of a long session (a scan made it quadratic).
        voiced = self.recording.agent_audio_voiced
        i = bisect.bisect_right(voiced, mark.mono, key=lambda v: v.at.mono)
        return voiced[i].at if i < len(voiced) else None

    async def save(self, path: Path) -> Path:
        samples = self.samples
        await asyncio.to_thread(save_wav, path, samples)
        logger.info("saved %.1fs of agent audio to %s", samples.size / SAMPLE_RATE, path)
        return path

    async def aclose(self) -> None:
        for sid in list(self._streams):
            await self.detach(sid)

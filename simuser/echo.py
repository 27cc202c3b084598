"""A room's acoustic echo: the agent's voice, played by the speakers, back in the microphone.

A browser page hears the agent through loudspeakers and its microphone picks that up again; the
page removes most of it with WebRTC's echo canceller (`echoCancellation`, on by default in
livekit-client). `EchoPath` does both to the simulated user's microphone: it adds the agent
audio received so far, attenuated and delayed, and (with `cancel`) runs the mix through the same
WebRTC audio processing module (AEC3, noise suppression, high-pass filter, gain control) with
the received audio as its far end. Used to test that the agent is not interrupted by its own
echo (docs/greeting.md).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from livekit import rtc

from .audio import SAMPLE_RATE, Int16Array

__all__ = ["EchoPath"]

_APM_FRAME = SAMPLE_RATE // 100  # the module takes exactly 10 ms per call
_MAX_BACKLOG = SAMPLE_RATE // 5  # far-end audio not yet played back: keep at most 200 ms


class EchoPath:
    def __init__(self, *, level_db: float, delay_ms: int = 60, cancel: bool = True) -> None:
        self.gain = 10 ** (level_db / 20)
        self.delay_ms = delay_ms
        self._far: deque[Int16Array] = deque()
        self._far_samples = 0
        self._line: Int16Array = np.zeros(SAMPLE_RATE * delay_ms // 1000, dtype=np.int16)
        self._apm = (
            rtc.AudioProcessingModule(
                echo_cancellation=True,
                noise_suppression=True,
                high_pass_filter=True,
                auto_gain_control=True,
            )
            if cancel
            else None
        )

    def far_end(self, samples: Int16Array) -> None:
        """Agent audio as received (48 kHz mono): what the speakers are about to play."""
        self._far.append(samples)
        self._far_samples += samples.size
        while self._far_samples > _MAX_BACKLOG:
            self._far_samples -= self._far.popleft().size

    def _take_far(self, count: int) -> Int16Array:
        out = np.zeros(count, dtype=np.int16)
        filled = 0
        while filled < count and self._far:
            chunk = self._far.popleft()
            used = min(count - filled, chunk.size)
            out[filled : filled + used] = chunk[:used]
            if used < chunk.size:
                self._far.appendleft(chunk[used:])
            filled += used
            self._far_samples -= used
        return out

    def process(self, mic: Int16Array) -> Int16Array:
        """The microphone frame as the page would send it: with the echo, then cancelled."""
        far = self._take_far(mic.size)
        line = np.concatenate([self._line, far])
        played, self._line = line[: mic.size], line[mic.size :]
        mixed = mic.astype(np.float64) + played.astype(np.float64) * self.gain
        near: Int16Array = np.clip(mixed, -32768, 32767).astype(np.int16)
        if self._apm is None or mic.size % _APM_FRAME:
            return near
        out = np.empty_like(near)
        for start in range(0, near.size, _APM_FRAME):
            end = start + _APM_FRAME
            reverse = rtc.AudioFrame(far[start:end].tobytes(), SAMPLE_RATE, 1, _APM_FRAME)
            self._apm.process_reverse_stream(reverse)
            self._apm.set_stream_delay_ms(self.delay_ms)
            frame = rtc.AudioFrame(near[start:end].tobytes(), SAMPLE_RATE, 1, _APM_FRAME)
            self._apm.process_stream(frame)
            out[start:end] = np.frombuffer(bytes(frame.data), dtype=np.int16)
        return out

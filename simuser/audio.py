"""WAV in and out, conversion to 48 kHz mono int16, levels, framing and real-time pacing.

Everything here is plain numpy on in-memory arrays; file reads and writes are synchronous and
meant to run in a thread (`asyncio.to_thread`) from async code.
"""

from __future__ import annotations

import asyncio
import logging
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_SILENCE_RMS",
    "SAMPLE_RATE",
    "Int16Array",
    "RealTimePacer",
    "frames_of",
    "load_wav",
    "read_wav",
    "resample",
    "rms",
    "save_wav",
    "silence",
    "to_int16",
    "to_mono_48k",
    "voiced_span",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
# RMS in int16 units under which a frame counts as silent (about -54 dBFS): Opus decoding of
# digital silence stays far below it, any speech far above.
DEFAULT_SILENCE_RMS = 64.0

Int16Array = npt.NDArray[np.int16]
Float64Array = npt.NDArray[np.float64]


def read_wav(path: Path) -> tuple[Float64Array, int]:
    """Read a PCM WAV (8/16/24/32-bit, any channels) as float samples in [-1, 1], mixed to mono."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        channels = wav.getnchannels()
        width = wav.getsampwidth()
        raw = wav.readframes(wav.getnframes())
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
        data = ints.astype(np.float64) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float64) / float(1 << 31)
    else:  # pragma: no cover - the wave module only yields 1-4
        raise ValueError(f"{path}: unsupported sample width {width}")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate


def resample(samples: Float64Array, src_rate: int, dst_rate: int = SAMPLE_RATE) -> Float64Array:
    """Linear-interpolation resampling; downsampling first averages to limit aliasing.

    Good enough for speech fed to a VAD and a recogniser; not a mastering tool.
    """
    if src_rate == dst_rate or samples.size == 0:
        return samples
    if dst_rate < src_rate:
        factor = int(src_rate // dst_rate)
        if factor > 1:
            kernel = np.ones(factor) / factor
            samples = np.convolve(samples, kernel, mode="same")
    duration = samples.size / src_rate
    n_out = round(duration * dst_rate)
    src_t = np.arange(samples.size) / src_rate
    dst_t = np.arange(n_out) / dst_rate
    out: Float64Array = np.interp(dst_t, src_t, samples)
    return out


def to_int16(samples: Float64Array) -> Int16Array:
    clipped = np.clip(np.round(samples * 32767.0), -32768, 32767)
    return clipped.astype(np.int16)


def to_mono_48k(samples: Float64Array, rate: int) -> Int16Array:
    return to_int16(resample(samples, rate, SAMPLE_RATE))


def load_wav(path: Path) -> Int16Array:
    """Read any PCM WAV as 48 kHz mono int16, the format the microphone publishes."""
    samples, rate = read_wav(path)
    return to_mono_48k(samples, rate)


def save_wav(path: Path, samples: Int16Array, rate: int = SAMPLE_RATE) -> None:
    """Write mono int16 samples as a 16-bit PCM WAV (parent folders are created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.astype("<i2").tobytes())


def silence(seconds: float, rate: int = SAMPLE_RATE) -> Int16Array:
    return np.zeros(max(round(seconds * rate), 0), dtype=np.int16)


def rms(samples: Int16Array) -> float:
    if samples.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))


def frames_of(samples: Int16Array, frame_samples: int) -> list[Int16Array]:
    """Split into frames of exactly `frame_samples`; the last one is padded with silence."""
    if frame_samples <= 0:
        raise ValueError("frame_samples must be positive")
    n = -(-samples.size // frame_samples)
    padded = np.zeros(n * frame_samples, dtype=np.int16)
    padded[: samples.size] = samples
    return [padded[i * frame_samples : (i + 1) * frame_samples] for i in range(n)]


def voiced_span(
    samples: Int16Array,
    rate: int = SAMPLE_RATE,
    *,
    threshold: float = DEFAULT_SILENCE_RMS,
    window_ms: int = 10,
) -> tuple[float, float] | None:
    """(start, end) seconds of the non-silent part, by `window_ms` RMS windows; None if silent."""
    win = max(rate * window_ms // 1000, 1)
    voiced = [i for i, frame in enumerate(frames_of(samples, win)) if rms(frame) > threshold]
    if not voiced:
        return None
    return voiced[0] * win / rate, min((voiced[-1] + 1) * win, samples.size) / rate


class RealTimePacer:
    """Yields frame deadlines at a fixed period on `time.perf_counter()`.

    Frame n is due at `t0 + n * period`; waiting never drifts. If the loop falls more than
    `max_lag` behind (a stalled event loop), the schedule restarts from now rather than
    bursting to catch up.
    """

    def __init__(self, period: float, *, max_lag: float = 0.2) -> None:
        self.period = period
        self.max_lag = max_lag
        self._t0: float | None = None
        self._n = 0

    def reset(self) -> None:
        self._t0 = None
        self._n = 0

    async def next_deadline(self) -> float:
        """Sleep until the next frame is due and return its deadline (perf_counter seconds)."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._n = now, 0
        deadline = self._t0 + self._n * self.period
        if now - deadline > self.max_lag:
            logger.warning(
                "microphone pacing fell %.0f ms behind; resyncing", (now - deadline) * 1e3
            )
            self._t0, self._n, deadline = now, 0, now
        elif deadline > now:
            await asyncio.sleep(deadline - now)
        self._n += 1
        return deadline

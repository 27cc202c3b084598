"""WAV conversion, levels, framing and real-time pacing of the simulated user's microphone."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from simuser.audio import (
    SAMPLE_RATE,
    RealTimePacer,
    frames_of,
    load_wav,
    read_wav,
    resample,
    rms,
    save_wav,
    silence,
    voiced_span,
)
from simuser.recording import Recording, Stamp

pytestmark = pytest.mark.unit


def _tone(seconds: float, rate: int, freq: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * 0.5 * 32767).astype(np.int16)


def _write(path: Path, data: bytes, rate: int, channels: int, width: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data)


@pytest.mark.parametrize("rate", [8_000, 16_000, 22_050, 44_100, 48_000, 96_000])
def test_load_wav_converts_any_rate_to_48k_keeping_duration_and_pitch(
    tmp_path: Path, rate: int
) -> None:
    path = tmp_path / "in.wav"
    save_wav(path, _tone(1.0, rate), rate=rate)
    out = load_wav(path)
    assert out.dtype == np.int16
    assert out.size == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    assert np.argmax(spectrum) == pytest.approx(440, abs=2)  # 1 s at 48 kHz: 1 Hz per bin
    assert rms(out) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.05)


def test_read_wav_mixes_stereo_to_mono(tmp_path: Path) -> None:
    left = _tone(0.1, 16_000)
    stereo = np.stack([left, np.zeros_like(left)], axis=1).astype("<i2")
    path = tmp_path / "stereo.wav"
    _write(path, stereo.tobytes(), 16_000, 2, 2)
    mono, rate = read_wav(path)
    assert rate == 16_000
    assert mono.size == left.size
    assert np.allclose(mono, left / 32768.0 / 2, atol=1e-4)


@pytest.mark.parametrize("width", [1, 3, 4])
def test_read_wav_handles_8_24_and_32_bit_pcm(tmp_path: Path, width: int) -> None:
    samples = np.array([0.0, 0.5, -0.5, 0.25])
    if width == 1:
        data = (samples * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = (samples * (1 << 23)).astype(np.int32)
        data = b"".join(int(i).to_bytes(3, "little", signed=True) for i in ints)
    else:
        data = (samples * (1 << 31)).astype("<i4").tobytes()
    path = tmp_path / "pcm.wav"
    _write(path, data, 8_000, 1, width)
    read, _ = read_wav(path)
    assert np.allclose(read, samples, atol=0.01)


def test_resample_is_identity_at_the_same_rate() -> None:
    x = np.linspace(-1, 1, 100)
    assert resample(x, SAMPLE_RATE, SAMPLE_RATE) is x


def test_save_wav_writes_16_bit_mono_48k(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.wav"
    save_wav(path, _tone(0.25, SAMPLE_RATE))
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
        assert wav.getnframes() == SAMPLE_RATE // 4


def test_frames_of_pads_the_last_frame_with_silence() -> None:
    frames = frames_of(np.ones(1000, dtype=np.int16), 480)
    assert [f.size for f in frames] == [480, 480, 480]
    assert frames[2][:40].tolist() == [1] * 40
    assert not frames[2][40:].any()
    assert frames_of(np.zeros(0, dtype=np.int16), 480) == []


def test_voiced_span_finds_speech_inside_silence() -> None:
    audio = np.concatenate([silence(0.3), _tone(0.5, SAMPLE_RATE), silence(0.2)])
    start, end = voiced_span(audio) or (0.0, 0.0)
    assert start == pytest.approx(0.3, abs=0.011)
    assert end == pytest.approx(0.8, abs=0.011)
    assert voiced_span(silence(1.0)) is None


async def test_pacer_keeps_real_time_without_drift() -> None:
    pacer = RealTimePacer(0.01)
    first = await pacer.next_deadline()
    deadlines = [await pacer.next_deadline() for _ in range(30)]
    assert deadlines[-1] - first == pytest.approx(0.30, abs=1e-9)
    assert time.perf_counter() >= deadlines[-1]
    assert time.perf_counter() - first < 0.30 + 0.1


async def test_pacer_resyncs_after_a_stall_instead_of_bursting() -> None:
    pacer = RealTimePacer(0.01, max_lag=0.05)
    await pacer.next_deadline()
    time.sleep(0.1)  # noqa: ASYNC251 - simulates a blocked event loop
    resumed = await pacer.next_deadline()
    assert time.perf_counter() - resumed < 0.02
    following = await pacer.next_deadline()
    assert following - resumed == pytest.approx(0.01, abs=1e-9)


def test_stamp_shift_moves_both_clocks_together() -> None:
    s = Stamp.now()
    later = s.shifted(1.5)
    assert later.since(s) == pytest.approx(1.5)
    assert later.wall_ms - s.wall_ms == pytest.approx(1500.0)
    assert abs(s.wall_ms - time.time() * 1000) < 1000


async def test_recording_wait_for_wakes_on_change_and_times_out() -> None:
    rec = Recording()
    box: list[int] = []

    async def later() -> None:
        await asyncio.sleep(0.05)
        box.append(7)
        rec.changed()

    task = asyncio.create_task(later())
    assert await rec.wait_for(lambda: box[0] if box else None, 2, "seven") == 7
    await task
    with pytest.raises(TimeoutError, match="waiting for nothing"):
        await rec.wait_for(lambda: None, 0.05, "nothing")

"""The simulated room echo: the agent's voice back in the microphone, and cancelled like a page."""

from __future__ import annotations

import numpy as np
import pytest

from simuser.audio import SAMPLE_RATE, Int16Array, rms
from simuser.echo import EchoPath

pytestmark = pytest.mark.unit

FRAME = SAMPLE_RATE // 50  # the microphone's 20 ms frames


def _speechlike(seconds: float) -> Int16Array:
    """Seeded noise in 200 ms syllables with pauses: broadband, voice-level, like espeak."""
    rng = np.random.default_rng(7)
    n = int(seconds * SAMPLE_RATE)
    envelope = (np.arange(n) // (SAMPLE_RATE // 5)) % 3 != 2
    noise = rng.standard_normal(n) * 4000 * envelope
    smoothed = np.convolve(noise, np.ones(8) / 8, mode="same")
    return np.clip(smoothed, -32768, 32767).astype(np.int16)


def _through(echo: EchoPath, far: Int16Array) -> Int16Array:
    """Play `far` to the path frame by frame (as received) while the user is silent."""
    out = []
    for start in range(0, far.size - FRAME + 1, FRAME):
        echo.far_end(far[start : start + FRAME])
        out.append(echo.process(np.zeros(FRAME, dtype=np.int16)))
    return np.concatenate(out)


def test_echo_is_the_far_end_attenuated_and_delayed() -> None:
    far = _speechlike(2.0)
    sent = _through(EchoPath(level_db=-20, delay_ms=60, cancel=False), far)
    delay = SAMPLE_RATE * 60 // 1000
    assert not sent[:delay].any()
    expected = far[: sent.size - delay].astype(np.float64) * 0.1
    assert np.abs(sent[delay:] - expected).max() <= 1.0


def test_the_user_is_heard_through_the_path() -> None:
    echo = EchoPath(level_db=-20, cancel=False)
    voice = _speechlike(0.02)
    assert np.array_equal(echo.process(voice), voice)  # nothing received yet: no echo


def test_echo_cancellation_removes_most_of_the_echo_from_the_start() -> None:
    far = _speechlike(3.0)
    raw = _through(EchoPath(level_db=-6, cancel=False), far)
    cancelled = _through(EchoPath(level_db=-6, cancel=True), far)
    after_half_a_second = slice(SAMPLE_RATE // 2, None)
    ratio_db = 20 * np.log10(rms(raw[after_half_a_second]) / rms(cancelled[after_half_a_second]))
    assert ratio_db > 20, ratio_db

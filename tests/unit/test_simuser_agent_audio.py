"""The simulated user's "first agent audio after" lookup (the mark of every turn latency)."""

from __future__ import annotations

import pytest

from simuser.agent_audio import AgentAudioRecorder
from simuser.recording import AudioMark, Recording, Stamp

pytestmark = pytest.mark.unit


def _at(mono: float) -> Stamp:
    return Stamp(mono=mono, wall_ms=mono * 1000.0)


def test_first_voiced_after_is_the_first_mark_strictly_later() -> None:
    recording = Recording()
    recorder = AgentAudioRecorder(recording)
    recording.agent_audio_voiced.extend(AudioMark(at=_at(t), rms=0.5) for t in (1.0, 2.0, 3.0))
    assert recorder.first_voiced_after(_at(0.5)) == _at(1.0)
    assert recorder.first_voiced_after(_at(2.0)) == _at(3.0)  # not the mark at the same instant
    assert recorder.first_voiced_after(_at(2.5)) == _at(3.0)
    assert recorder.first_voiced_after(_at(3.0)) is None
    assert AgentAudioRecorder(Recording()).first_voiced_after(_at(0.0)) is None

"""espeak-ng rendering of the simulated user's questions (espeak-ng and sox are installed)."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from common.languages import UnsupportedLanguageError, supported_codes
from simuser.audio import SAMPLE_RATE, load_wav, voiced_span
from simuser.speech import ESPEAK_VOICES, espeak_voice, render_speech

pytestmark = pytest.mark.unit


def test_every_session_language_has_an_espeak_voice() -> None:
    assert set(ESPEAK_VOICES) == set(supported_codes())
    assert espeak_voice("es_mx") == "es-419"
    with pytest.raises(UnsupportedLanguageError):
        espeak_voice("xx")


async def test_render_speech_writes_48k_mono_speech_and_caches_it(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = await render_speech("What are your opening hours?", "en", cache_dir=cache)
    assert first.parent == cache
    with wave.open(str(first), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, SAMPLE_RATE)
    span = voiced_span(load_wav(first))
    assert span is not None
    assert 0.8 < span[1] - span[0] < 5.0
    mtime = first.stat().st_mtime_ns

    again = await render_speech("What are your opening hours?", "en", cache_dir=cache)
    assert again == first
    assert again.stat().st_mtime_ns == mtime
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary files left

    copy = await render_speech(
        "What are your opening hours?", "en", tmp_path / "out" / "q.wav", cache_dir=cache
    )
    assert copy == tmp_path / "out" / "q.wav"
    assert copy.read_bytes() == first.read_bytes()


async def test_render_speech_depends_on_language_and_takes_option_like_text(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    en = await render_speech("--help", "en", cache_dir=cache)
    es = await render_speech("--help", "es-MX", cache_dir=cache)
    assert en != es
    assert voiced_span(load_wav(es)) is not None


async def test_render_speech_refuses_empty_text(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        await render_speech("   ", "en", cache_dir=tmp_path)

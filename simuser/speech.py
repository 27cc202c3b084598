"""Render a question as speech with espeak-ng (Debian package), resampled by sox to 48 kHz mono.

Renders are cached under `.cache/speech/` by a hash of everything that shapes the audio (text,
voice, speed, espeak-ng version), so tests and benchmarks pay for each phrase once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from common.languages import LANGUAGES, normalize_language_code
from devstack.paths import CACHE_DIR

__all__ = [
    "ESPEAK_VOICES",
    "SPEECH_CACHE_DIR",
    "SpeechRenderError",
    "espeak_voice",
    "render_speech",
]

logger = logging.getLogger(__name__)

SPEECH_CACHE_DIR = CACHE_DIR / "speech"

ESPEAK_VOICES: dict[str, str] = {lang.code: lang.espeak_voice for lang in LANGUAGES}

DEFAULT_SPEED_WPM = 160


class SpeechRenderError(RuntimeError):
    """espeak-ng or sox is missing or failed."""


def espeak_voice(language: str) -> str:
    """The espeak-ng voice for a session language code (raises UnsupportedLanguageError)."""
    return ESPEAK_VOICES[normalize_language_code(language)]


async def _run(args: list[str], stdin: bytes | None = None) -> bytes:
    exe = shutil.which(args[0])
    if exe is None:
        raise SpeechRenderError(f"{args[0]} is not installed (Debian package {args[0]})")
    proc = await asyncio.create_subprocess_exec(
        exe,
        *args[1:],
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    if proc.returncode != 0:
        raise SpeechRenderError(
            f"{args[0]} exited with {proc.returncode}: {err.decode(errors='replace').strip()}"
        )
    return out


async def _espeak_version() -> str:
    out = await _run(["espeak-ng", "--version"])
    return out.decode(errors="replace").strip()


def _cache_key(text: str, voice: str, speed: int, version: str) -> str:
    h = hashlib.sha256("\x00".join([text, voice, str(speed), version]).encode())
    return h.hexdigest()[:32]


def _temp_paths(cache_dir: Path) -> tuple[Path, Path]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in (".raw.wav", ".wav"):
        fd, name = tempfile.mkstemp(suffix=suffix, dir=cache_dir)
        os.close(fd)
        paths.append(Path(name))
    return paths[0], paths[1]


def _unlink(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


async def render_speech(
    text: str,
    language: str = "en",
    path: Path | None = None,
    *,
    speed_wpm: int = DEFAULT_SPEED_WPM,
    cache_dir: Path = SPEECH_CACHE_DIR,
) -> Path:
    """Speak `text` in `language` into a 48 kHz mono 16-bit WAV and return its path.

    The render lands in `cache_dir` (reused when present); with `path` it is also copied there
    and `path` is returned. The text goes to espeak-ng on stdin, so it is never parsed as
    options.
    """
    text = text.strip()
    if not text:
        raise ValueError("nothing to say: empty text")
    voice = espeak_voice(language)
    key = _cache_key(text, voice, speed_wpm, await _espeak_version())
    cached = cache_dir / f"{key}.wav"
    if not await asyncio.to_thread(cached.exists):
        raw, out = await asyncio.to_thread(_temp_paths, cache_dir)
        try:
            await _run(
                ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(raw), "--stdin"],
                stdin=text.encode(),
            )
            await _run(
                ["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", "-e", "signed", str(out)]
            )
            await asyncio.to_thread(out.replace, cached)
            logger.debug("rendered %r (%s) to %s", text, voice, cached)
        finally:
            await asyncio.to_thread(_unlink, raw, out)
    if path is None:
        return cached
    await asyncio.to_thread(_copy, cached, path)
    return path

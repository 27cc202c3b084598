"""Speech synthesis with espeak-ng, resampled by sox to 24 kHz mono int16, streamed as it comes.

Language: the request's OpenAI voice, when it is the voice of one of our languages
(`common.languages`: one voice per language, the one the agent sends), then `instructions` naming
a language (`language: es-MX`, or a name such as "Mexican Spanish" or "Español"), then English.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator

from common.languages import LANGUAGES, UnsupportedLanguageError, normalize_language_code

__all__ = ["ESPEAK_VOICES", "SAMPLE_RATE", "PcmCache", "Synthesizer", "resolve_language"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
ESPEAK_VOICES: dict[str, str] = {lang.code: lang.espeak_voice for lang in LANGUAGES}
ESPEAK_WPM = 175  # espeak-ng's default rate, used for speed 1.0
CHUNK_BYTES = 4800  # 100 ms of 24 kHz int16

_LANGUAGE_FIELD = re.compile(r"\blanguage\s*[:=]\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?)", re.I)
# Longest names first so "Mexican Spanish" wins over "Spanish".
_NAMES: list[tuple[str, str]] = sorted(
    (
        (name.casefold(), lang.code)
        for lang in LANGUAGES
        for name in (lang.english_name, lang.native_name)
    ),
    key=lambda item: -len(item[0]),
)
_VOICE_LANGUAGE: dict[str, str] = {lang.tts_voice: lang.code for lang in LANGUAGES}


def resolve_language(instructions: str | None, voice: str) -> str:
    """Our language code for a speech request (see the module docstring for the order)."""
    by_voice = _VOICE_LANGUAGE.get(voice.casefold())
    if by_voice is not None:
        return by_voice
    if instructions:
        match = _LANGUAGE_FIELD.search(instructions)
        if match:
            with contextlib.suppress(UnsupportedLanguageError):
                return normalize_language_code(match.group(1))
        folded = instructions.casefold()
        for name, code in _NAMES:
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", folded):
                return code
    return "en"


class SynthesisError(RuntimeError):
    pass


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    stdin.write(data)
    await stdin.drain()
    stdin.close()


class PcmCache:
    """The last `entries` complete syntheses, keyed by (text, voice, rate): greetings and FAQ
    answers repeat word for word, and a repeat costs no espeak-ng/sox process."""

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._items: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, int]) -> bytes | None:
        pcm = self._items.get(key)
        if pcm is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return pcm

    def put(self, key: tuple[str, str, int], pcm: bytes) -> None:
        if self._entries <= 0:
            return
        self._items[key] = pcm
        self._items.move_to_end(key)
        while len(self._items) > self._entries:
            self._items.popitem(last=False)


class Synthesizer:
    """Runs espeak-ng | sox as asyncio subprocesses; at most `concurrency` at a time. With
    `cache_entries`, a text already spoken in the same voice and rate is replayed from memory."""

    def __init__(self, concurrency: int, cache_entries: int = 0) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.cache = PcmCache(cache_entries)

    async def stream_pcm(self, text: str, language: str, speed: float) -> AsyncGenerator[bytes]:
        """Raw 24 kHz mono int16 little-endian PCM, in chunks as soon as sox emits them."""
        voice = ESPEAK_VOICES.get(language, ESPEAK_VOICES["en"])
        wpm = max(80, min(450, round(ESPEAK_WPM * speed)))
        key = (text, voice, wpm)
        cached = self.cache.get(key)
        if cached is not None:
            for start in range(0, len(cached), CHUNK_BYTES):
                yield cached[start : start + CHUNK_BYTES]
            return
        whole = bytearray()
        async for chunk in self._synthesize(text, voice, wpm):
            whole += chunk
            yield chunk
        self.cache.put(key, bytes(whole))  # only reached when the synthesis succeeded

    async def _synthesize(self, text: str, voice: str, wpm: int) -> AsyncIterator[bytes]:
        async with self._slots:
            read_fd, write_fd = os.pipe()
            try:
                espeak = await asyncio.create_subprocess_exec(
                    "espeak-ng", "-v", voice, "-s", str(wpm), "--stdin", "--stdout",
                    stdin=asyncio.subprocess.PIPE, stdout=write_fd,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                sox = await asyncio.create_subprocess_exec(
                    "sox", "-q", "-t", "wav", "-", "-t", "raw", "-r", str(SAMPLE_RATE),
                    "-e", "signed-integer", "-b", "16", "-c", "1", "-L", "-",
                    stdin=read_fd, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
            finally:
                os.close(read_fd)
                os.close(write_fd)
            assert espeak.stdin is not None
            assert sox.stdout is not None
            # Fed from a task: a long text must not block on a full pipe while nobody reads.
            feeder = asyncio.create_task(_feed(espeak.stdin, text.encode("utf-8")))
            try:
                pending = b""
                while chunk := await sox.stdout.read(CHUNK_BYTES):
                    pending += chunk
                    cut = len(pending) - len(pending) % 2  # whole samples only
                    if cut:
                        yield pending[:cut]
                        pending = pending[cut:]
                if await sox.wait() != 0 or await espeak.wait() != 0:
                    raise SynthesisError(f"espeak-ng/sox failed for voice {voice}")
            finally:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await feeder
                for proc in (espeak, sox):
                    if proc.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            proc.kill()
                        await proc.wait()

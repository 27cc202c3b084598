"""The stand-in's synthesis cache: a repeated text is replayed byte for byte without espeak-ng."""

from __future__ import annotations

import asyncio
from unittest import mock

from standin import tts
from standin.tts import PcmCache, Synthesizer


async def _speak(synth: Synthesizer, text: str, speed: float = 1.0) -> bytes:
    return b"".join([chunk async for chunk in synth.stream_pcm(text, "en", speed)])


async def test_standin_tts_cache_replays_a_repeat_without_a_new_process() -> None:
    synth = Synthesizer(concurrency=2, cache_entries=4)
    first = await _speak(synth, "We are open from nine to five.")
    with mock.patch.object(
        asyncio, "create_subprocess_exec", side_effect=AssertionError("ran espeak-ng again")
    ):
        again = await _speak(synth, "We are open from nine to five.")
    assert first
    assert again == first
    assert (synth.cache.hits, synth.cache.misses) == (1, 1)


async def test_standin_tts_cache_keys_on_rate_and_is_off_at_zero() -> None:
    synth = Synthesizer(concurrency=2, cache_entries=4)
    slow = await _speak(synth, "Hello there.", speed=0.5)
    fast = await _speak(synth, "Hello there.", speed=2.0)
    assert len(slow) > len(fast)  # a different rate is a different synthesis, not a hit
    assert synth.cache.hits == 0
    off = Synthesizer(concurrency=1, cache_entries=0)
    await _speak(off, "Hello there.")
    await _speak(off, "Hello there.")
    assert off.cache.hits == 0


def test_standin_tts_cache_drops_the_least_recently_used() -> None:
    cache = PcmCache(entries=2)
    a, b, c = ("a", "v", 1), ("b", "v", 1), ("c", "v", 1)
    cache.put(a, b"A")
    cache.put(b, b"B")
    assert cache.get(a) == b"A"  # a is now the most recent
    cache.put(c, b"C")
    assert cache.get(b) is None
    assert cache.get(a) == b"A"
    assert cache.get(c) == b"C"


async def test_standin_tts_cache_keeps_nothing_from_an_abandoned_stream() -> None:
    synth = Synthesizer(concurrency=1, cache_entries=4)
    text = "A long enough sentence to come in several chunks of audio."
    stream = synth.stream_pcm(text, "en", 1.0)
    await anext(stream)
    await stream.aclose()  # the client went away mid-answer: a partial synthesis
    whole = await _speak(synth, text)
    assert synth.cache.hits == 0
    assert len(whole) > tts.CHUNK_BYTES

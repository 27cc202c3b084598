"""The Whisper recogniser (standin.whisper) with the real tiny.en model from its wheel."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from typing import NamedTuple

import numpy as np
import pytest

from standin.whisper import WHISPER_BIAS, WhisperEngine, WhisperFactory, WhisperStream, model_path

pytestmark = [pytest.mark.unit, pytest.mark.timeout(180)]

RATE = 16000
FAQ_PROMPT = (
    "What are your opening hours?\nHow do I reset my password?\nWhere is the shop located?\n"
    "Which payment methods do you accept?\nDo you ship internationally?"
)
# The prompt's words that say which FAQ a question is about (not "do", "you", "what").
FAQ_TOPIC_WORDS = {
    "opening", "hours", "reset", "password", "shop", "located", "payment", "methods", "accept",
    "ship", "internationally",
}  # fmt: skip


def speech(text: str, voice: str = "en-us") -> bytes:
    """espeak-ng speech as 16 kHz mono int16 PCM."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "--stdout", text], capture_output=True, check=True
    ).stdout
    return subprocess.run(
        ["sox", "-t", "wav", "-", "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16",
         "-e", "signed", "-"],
        input=wav, capture_output=True, check=True,
    ).stdout  # fmt: skip


class _Segment(NamedTuple):
    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    return WhisperEngine(concurrency=2)


def test_whisper_model_comes_from_the_installed_package_and_the_hub_is_offline() -> None:
    path = model_path()
    assert "site-packages" in path or "dist-packages" in path
    assert os.path.isfile(os.path.join(path, "model.bin"))
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_whisper_hears_a_question_with_most_words_right(engine: WhisperEngine) -> None:
    said = "Can I bring my dog into the shop on Saturday?"
    heard = words(engine.transcribe(speech(said)) or "")
    right = sum(1 for w in words(said) if w in heard)
    assert right >= 0.7 * len(words(said)), heard


def test_whisper_silence_hiss_and_a_click_give_empty_text_without_a_decode(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whisper invents text on quiet or tiny audio ("Thank you."): such audio never reaches it."""
    rng = np.random.default_rng(1)
    silence = np.zeros(2 * RATE, dtype="<i2").tobytes()
    hiss = (rng.normal(0, 30, 2 * RATE)).astype("<i2").tobytes()  # about -60 dBFS
    click = speech("hours")[: RATE // 10 * 2]  # 100 ms of speech
    spoken = speech("hours")

    def no_decode(*_: object) -> str:
        raise AssertionError("decoded")

    monkeypatch.setattr(engine, "_decode", no_decode)
    monkeypatch.setattr(engine, "_quick_decode", no_decode)
    assert engine.transcribe(silence) == ""
    assert engine.transcribe(hiss) == ""
    assert engine.transcribe(click) == ""
    assert engine.transcribe(silence, quick=True) == ""
    with pytest.raises(AssertionError, match="decoded"):
        engine.transcribe(spoken)


def test_whisper_drops_a_repetition_loop(engine: WhisperEngine) -> None:
    """With a prompt, tiny.en can loop ("Share your password? Share your password? ..."); such a
    segment is dropped, and the loop is cut short by the token budget."""
    loop = "Share your password? " * 30
    kept = engine._keep_segments(
        [_Segment(loop, 0.1, -0.2, 4.0), _Segment(" Hello.", 0.1, -0.2, 1.0)]
    )
    assert kept == "Hello."


def test_whisper_with_the_faq_prompt_hears_an_faq_question_and_adds_no_faq_words() -> None:
    """The stand-in's bias choice (WHISPER_BIAS): with the FAQ questions as the prompt, tiny.en
    loops on some FAQ questions ("Share your password? Share your password? ...") and slips FAQ
    words into other questions; without it, neither happens (bench/recogniser.py)."""
    engine = WhisperEngine(concurrency=1, bias=WHISPER_BIAS)
    faq = "Where is the shop located?"
    heard_faq = words(engine.transcribe(speech(faq, "en-us+f3"), FAQ_PROMPT) or "")
    assert heard_faq == words(faq)
    other = "Can I come in to see the dentist on a Saturday?"
    heard = set(words(engine.transcribe(speech(other, "en-us+f3"), FAQ_PROMPT) or ""))
    assert heard & FAQ_TOPIC_WORDS - set(words(other)) == set(), heard


def test_whisper_stream_partials_grow_and_the_final_is_the_whole_question(
    engine: WhisperEngine,
) -> None:
    said = "Which payment methods do you accept at the shop?"
    pcm = speech(said)
    stream = WhisperStream(engine, partial_every_s=0.5)
    stream.set_prompt(FAQ_PROMPT)
    partials: list[str] = []
    step = RATE * 2 // 20  # 50 ms chunks
    for i in range(0, len(pcm), step):
        partial = stream.accept(pcm[i : i + step])
        if partial and (not partials or partial != partials[-1]):
            partials.append(partial)
    final = stream.finish()
    assert len(partials) >= 2, partials
    assert len(words(partials[-1])) > len(words(partials[0])), partials
    assert len(words(final)) > len(words(partials[0])), (partials, final)
    assert {"payment", "methods", "accept"} <= set(words(final)), final
    # The next utterance starts empty.
    assert stream.accept(np.zeros(RATE // 10, dtype="<i2").tobytes()) == ""
    assert stream.finish() == ""


def test_whisper_partial_is_skipped_while_every_decode_slot_is_busy() -> None:
    """A partial never queues behind another connection's decode: it keeps the last text."""
    engine = WhisperEngine(concurrency=1)
    pcm = speech("What are your opening hours?")
    stream = WhisperStream(engine, partial_every_s=0.2)
    held, release, released = threading.Event(), threading.Event(), threading.Event()

    def other_connection() -> None:
        with engine._slots:
            held.set()
            release.wait(10)
        released.set()

    holder = threading.Thread(target=other_connection)
    holder.start()
    held.wait(10)
    partial = stream.accept(pcm)
    skipped_while_busy = not released.is_set()
    release.set()
    holder.join()
    assert skipped_while_busy
    assert partial == ""
    assert stream.accept(b"\0\0" * 160) != ""  # free again: the pending partial runs


def test_whisper_engine_runs_at_most_its_concurrency_at_once() -> None:
    engine = WhisperEngine(concurrency=2)
    running, peak, lock = 0, 0, threading.Lock()
    real = engine._decode

    def counted(audio: np.ndarray, prompt: str | None) -> str:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            time.sleep(0.05)
            return real(audio, prompt)
        finally:
            with lock:
                running -= 1

    engine._decode = counted  # type: ignore[method-assign]
    pcm = speech("Do you ship internationally?")
    results: list[str | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(engine.transcribe(pcm))) for _ in range(5)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2
    assert len(results) == 5
    assert all(results), results


def test_whisper_factory_shares_one_model_between_connections() -> None:
    factory = WhisperFactory(concurrency=1)
    first, second = factory.open(), factory.open()
    assert first._engine is second._engine

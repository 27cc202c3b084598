"""The Whisper recogniser (standin.whisper) with the real tiny.en model from its wheel."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from bench.recogniser import render
from standin.settings import Settings
from standin.whisper import (
    FINAL_MIN_WINDOW_S,
    WhisperEngine,
    WhisperFactory,
    WhisperStream,
    model_path,
)

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
    """espeak-ng speech as 16 kHz mono int16 PCM, the same on every run (sox's dither off:
    its random noise alone flips some of tiny.en's words from run to run): the recogniser
    benchmark's rendering."""
    return render(text, voice)


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


def heard_share(said: str, heard: str) -> float:
    """The share of the words said that were heard."""
    got = set(words(heard))
    return sum(1 for w in words(said) if w in got) / len(words(said))


def encoded_seconds(engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Records the seconds of encoder window of each encode the engine runs (100 frames a s)."""
    seen: list[float] = []
    real = engine._model.encode

    def spy(features: np.ndarray) -> object:
        seen.append(features.shape[-1] / 100)
        return real(features)

    monkeypatch.setattr(engine._model, "encode", spy)
    return seen


def test_whisper_final_of_a_short_question_encodes_a_short_window_and_hears_it(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2-3 s question is encoded on the floor window (10 s), a third of Whisper's 30 s (the
    encoder is most of a decode's cost), without losing its words."""
    said = "Can I bring my dog into the shop on Saturday?"
    seen = encoded_seconds(engine, monkeypatch)
    heard = engine.transcribe(speech(said)) or ""
    assert seen == [FINAL_MIN_WINDOW_S]
    assert heard_share(said, heard) >= 0.7, heard


def test_whisper_final_longer_than_the_floor_gets_a_window_that_holds_it_all(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question longer than the floor window is not cut at the floor: its last words count."""
    said = (
        "Hello, I ordered a pair of running shoes from your website last week and they still"
        " have not arrived, could you tell me where my parcel is? I paid with my credit card."
    )
    pcm = speech(said)
    seconds = len(pcm) / 2 / RATE
    assert FINAL_MIN_WINDOW_S < seconds < 25
    seen = encoded_seconds(engine, monkeypatch)
    heard = engine.transcribe(pcm) or ""
    assert len(seen) == 1, seen
    assert seconds <= seen[0] < 30, (seen, seconds)
    assert heard_share("I paid with my credit card", heard) >= 0.8, heard
    assert heard_share(said, heard) >= 0.7, heard


def test_whisper_final_longer_than_one_whisper_window_decodes_whole(
    engine: WhisperEngine,
) -> None:
    """Over 30 s of speech goes through faster-whisper's decode, which walks the windows: the
    question said after the first 30 s is heard too."""
    story = [
        "I bought a coffee machine in your store two months ago.",
        "It worked well at first, but now it makes a loud noise.",
        "The water comes out cold and the light keeps blinking.",
        "I still have the receipt and the box it came in.",
        "My sister has the same model and hers works fine.",
        "I have tried to clean it with vinegar twice already.",
        "I also read the manual, but nothing in it helped.",
        "The shop assistant told me to call this number.",
    ]
    question = "Can I bring it back for a repair on Monday morning?"
    gap = np.zeros(RATE // 2, dtype="<i2").tobytes()
    pcm = b"".join(speech(s) + gap for s in story)
    assert len(pcm) > 31 * RATE * 2
    pcm += speech(question)
    heard = engine.transcribe(pcm) or ""
    assert heard_share(story[0], heard) >= 0.7, heard
    assert heard_share(question, heard) >= 0.7, heard


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


def test_whisper_short_window_final_of_loud_noise_and_hum_is_empty(
    engine: WhisperEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Noise loud enough to pass the silence gate reaches the fitted-window decode; Whisper's
    own doubt about it (no-speech probability, log-probability) still drops its inventions."""
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 3000, 3 * RATE).astype("<i2").tobytes()  # about -20 dBFS
    hum = (2000 * np.sin(2 * np.pi * 120 * np.arange(3 * RATE) / RATE)).astype("<i2").tobytes()
    seen = encoded_seconds(engine, monkeypatch)
    assert engine.transcribe(noise) == ""
    assert engine.transcribe(hum) == ""
    assert seen == [FINAL_MIN_WINDOW_S] * 2


def test_whisper_drops_a_repetition_loop(engine: WhisperEngine) -> None:
    """With a prompt, tiny.en can loop ("Share your password? Share your password? ..."); such a
    segment is dropped, and the loop is cut short by the token budget."""
    loop = "Share your password? " * 30
    kept = engine._keep_segments(
        [_Segment(loop, 0.1, -0.2, 4.0), _Segment(" Hello.", 0.1, -0.2, 1.0)]
    )
    assert kept == "Hello."


def test_whisper_with_the_faq_prompt_hears_an_faq_question_and_adds_no_faq_words() -> None:
    """With the stand-in's default bias (`STANDIN_WHISPER_BIAS`) and the agent's FAQ prompt,
    Whisper neither loops on an FAQ question (tiny.en did with the questions as its
    `initial_prompt`: "Share your password? Share your password? ...") nor slips FAQ words into
    a question that lacks them (pocketsphinx did, with the FAQ questions as its model)."""
    engine = WhisperEngine(concurrency=1, bias=Settings(_env_file=None).whisper_bias)  # type: ignore[call-arg]
    faq = "Where is the shop located?"
    heard_faq = engine.transcribe(speech(faq, "en-us+f3"), FAQ_PROMPT) or ""
    # Not looped and dropped; this voice's "shop" is heard "sharp" on the final's short window.
    assert heard_share(faq, heard_faq) >= 0.75, heard_faq
    other = "Can I come in to see the dentist on a Saturday?"
    heard = set(words(engine.transcribe(speech(other, "en-us+f3"), FAQ_PROMPT) or ""))
    assert heard & FAQ_TOPIC_WORDS - set(words(other)) == set(), heard


def test_whisper_default_hears_a_streamed_question_that_is_a_prompt_line_once() -> None:
    """Audio as the agent streamed it in a voice-turn benchmark (the project's voice, through
    the framework's resampling: 2.1 s, 16 kHz): "What are your opening hours?", which is the
    first line of the agent's prompt. With the FAQ questions as `initial_prompt`, tiny.en heard
    it twice, and three times or more (then dropped as a loop, the turn lost) in other turns;
    this is why the default bias is none (docs/standin.md)."""
    pcm = (Path(__file__).parent / "data" / "streamed-opening-hours.pcm").read_bytes()
    prompt = "What are your opening hours?\nHow do I reset my password?"
    engine = WhisperEngine(concurrency=1, bias=Settings(_env_file=None).whisper_bias)  # type: ignore[call-arg]
    assert words(engine.transcribe(pcm, prompt) or "") == words("What are your opening hours?")


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

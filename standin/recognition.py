"""Incremental speech recognition for the realtime transcription endpoint, behind a small seam.

A `StreamingRecogniser` hears one utterance at a time: audio goes in as it arrives (`accept`
returns the current partial hypothesis), `finish` gives the final text and readies it for the
next utterance. A `RecogniserFactory` makes one per connection. Both are blocking (CPU-bound);
`standin.realtime` calls them one at a time from a worker thread. Any engine that can give a
partial hypothesis fits (pocketsphinx here; a Whisper engine can re-decode its buffer).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

from pocketsphinx import Decoder

from .stt import HintedDecoder

__all__ = [
    "BatchPass",
    "PocketsphinxFactory",
    "PocketsphinxStream",
    "RecogniserFactory",
    "StreamingRecogniser",
    "stable_words",
]

logger = logging.getLogger(__name__)

# Live cepstral mean normalisation: the batch variant of the upload path needs the whole
# utterance before it can produce any hypothesis.
STREAMING_DECODER_OPTIONS: dict[str, str | float] = {"cmn": "live", "lw": 9.0}
STREAMING_HINT_OPTIONS: dict[str, str | float] = {"cmn": "live", "lw": 4.0}


class StreamingRecogniser(Protocol):
    """One connection's recogniser; blocking methods, never called concurrently."""

    @property
    def sample_rate(self) -> int:
        """Rate of the mono int16 PCM that `accept` takes."""
        ...

    def set_prompt(self, prompt: str | None) -> None:
        """Vocabulary hint for the next utterance (the utterance under way keeps its own)."""
        ...

    def accept(self, pcm: bytes) -> str:
        """Feed audio of the current utterance; returns the partial hypothesis so far."""
        ...

    def finish(self) -> str:
        """End the current utterance and return its final text ("" if nothing was heard)."""
        ...

    def close(self) -> None:
        """Release the engine; the recogniser is not used afterwards."""
        ...


class RecogniserFactory(Protocol):
    def open(self) -> StreamingRecogniser:
        """A fresh recogniser (blocking: may load a model)."""
        ...


class BatchPass:
    """Whole-utterance decoders shared by every connection (thread-safe, made on demand).

    The final is a second pass over the utterance with batch normalisation, as accurate as
    the upload endpoint; the live pass is less sure of the last words at the utterance's end.
    """

    def __init__(self, size: int) -> None:
        self._free: queue.Queue[HintedDecoder] = queue.Queue()
        self._size = size
        self._made = 0
        self._lock = threading.Lock()

    def _take(self) -> HintedDecoder:
        with self._lock:
            if self._free.empty() and self._made < self._size:
                self._made += 1
                return HintedDecoder()
        return self._free.get()

    def recognize(self, pcm: bytes, prompt: str | None) -> str:
        decoder = self._take()
        try:
            return decoder.recognize(pcm, prompt)
        finally:
            self._free.put(decoder)


class PocketsphinxStream:
    """pocketsphinx's decoder fed chunk by chunk (`process_raw` without `full_utt`) for the
    partials; the final is a batch second pass over the utterance's audio."""

    sample_rate = 16000

    def __init__(self, decoders: HintedDecoder, final_pass: BatchPass) -> None:
        self._decoders = decoders
        self._final_pass = final_pass
        self._prompt: str | None = None
        self._utterance_prompt: str | None = None
        self._active: Decoder | None = None
        self._audio = bytearray()

    def set_prompt(self, prompt: str | None) -> None:
        self._prompt = prompt

    def accept(self, pcm: bytes) -> str:
        if self._active is None:
            self._utterance_prompt = self._prompt
            self._active = self._decoders.decoder_for(self._prompt)
            self._active.start_utt()
        self._audio += pcm
        self._active.process_raw(pcm, no_search=False, full_utt=False)
        hyp = self._active.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""

    def finish(self) -> str:
        decoder, self._active = self._active, None
        audio, self._audio = bytes(self._audio), bytearray()
        if decoder is None:
            return ""
        decoder.end_utt()
        if len(audio) < self.sample_rate // 10:  # under 50 ms: nothing to hear
            return ""
        return self._final_pass.recognize(audio, self._utterance_prompt)

    def close(self) -> None:
        if self._active is not None:
            self._active.end_utt()
            self._active = None
        self._audio = bytearray()


class PocketsphinxFactory:
    """A live decoder set per connection (~0.5 s and ~90 MB, loaded when its first speech
    arrives); the final pass shares `final_decoders` batch decoders among all connections."""

    def __init__(self, final_decoders: int = 2) -> None:
        self._final_pass = BatchPass(final_decoders)

    def open(self) -> PocketsphinxStream:
        live = HintedDecoder(STREAMING_DECODER_OPTIONS, STREAMING_HINT_OPTIONS)
        return PocketsphinxStream(live, self._final_pass)


def stable_words(previous: str, current: str) -> list[str]:
    """The words two successive partial hypotheses agree on, from the start, but the last.

    A partial hypothesis revises its last word or two as more audio arrives (the word being
    spoken is matched before it is complete); what two successive hypotheses share, short of
    the newest word, is unlikely to change, so only that is sent as a delta.
    """
    stable: list[str] = []
    words = current.split()
    for old, new in zip(previous.split(), words[:-1], strict=False):
        if old != new:
            break
        stable.append(new)
    return stable

"""Incremental speech recognition for the realtime transcription endpoint, behind a small seam.

A `StreamingRecogniser` hears one utterance at a time: audio goes in as it arrives (`accept`
returns the current partial hypothesis), `finish` gives the final text and readies it for the
next utterance. A `RecogniserFactory` makes one per connection. Both are blocking (CPU-bound);
`standin.realtime` calls them one at a time from a worker thread. Any engine that can give a
partial hypothesis fits (pocketsphinx here; a Whisper engine can re-decode its buffer).
"""

from __future__ import annotations

import logging
from typing import Protocol

from pocketsphinx import Decoder

from .stt import HintedDecoder

__all__ = [
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


class PocketsphinxStream:
    """pocketsphinx's decoder fed chunk by chunk (`process_raw` without `full_utt`)."""

    sample_rate = 16000

    def __init__(self, decoders: HintedDecoder) -> None:
        self._decoders = decoders
        self._prompt: str | None = None
        self._active: Decoder | None = None

    def set_prompt(self, prompt: str | None) -> None:
        self._prompt = prompt

    def accept(self, pcm: bytes) -> str:
        if self._active is None:
            self._active = self._decoders.decoder_for(self._prompt)
            self._active.start_utt()
        self._active.process_raw(pcm, no_search=False, full_utt=False)
        hyp = self._active.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""

    def finish(self) -> str:
        decoder, self._active = self._active, None
        if decoder is None:
            return ""
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""

    def close(self) -> None:
        if self._active is not None:
            self._active.end_utt()
            self._active = None


class PocketsphinxFactory:
    """A decoder set per connection (~0.5 s to load, once, when its first audio arrives)."""

    def open(self) -> PocketsphinxStream:
        return PocketsphinxStream(HintedDecoder(STREAMING_DECODER_OPTIONS, STREAMING_HINT_OPTIONS))


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

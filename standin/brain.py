"""The offline demo brain: FAQ retrieval, not a language model.

It reads the FAQs and the session language from the system prompt (the `common.prompt_data`
format) and either answers with one FAQ's answer verbatim or honestly says it does not know, in
the session language. It never writes an answer of its own.

Which FAQ: the one whose question + answer is closest to the user's words in the embedding
space (`standin.embeddings`, multilingual, so a Spanish question finds an English FAQ).
Whether to answer (precision first, `Rule`): the closest FAQ must be close enough AND clearly
closer than the runner-up; or the user's words must be close to that FAQ's question alone
(question to question, a second view) with both views picking it and neither in a near tie; or
the fuzzy lexical matcher (the FAQ's own wording) must pick the same FAQ. A cosine cut-off
alone does not separate covered from uncovered questions: the margin to the runner-up is what
keeps an in-between question from being answered.
The cut-offs come from the tune half of the understanding eval (`bench/understanding`).
Without an embedder (engine not built) only the lexical matcher decides.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict
from rapidfuzz import fuzz

from common.metadata import Faq
from common.prompt_data import parse_faq_block, parse_session_language

from .embeddings import Embedder, Similarities
from .text import visible

__all__ = [
    "Brain",
    "Decision",
    "Reply",
    "Rule",
    "adds_words",
    "decide",
    "fuzzy_score",
    "normalize",
    "strip_fillers",
]

logger = logging.getLogger(__name__)

FALLBACK_LANGUAGE = "en"
TOPICS_NAMED = 2
_NON_WORD = re.compile(r"[^\w']+|_")

How = Literal["semantic", "question", "lexical", "near_edit", "declined", "no_faqs"]


class _Replies(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unknown: str
    no_faqs: str
    joiner: str
    quote: str
    # Words that carry no question ("hi", "please"): left out before comparing wordings.
    fillers: tuple[str, ...]
    # Words that change no question's meaning ("are", "up", "the"): a recogniser's mishearing of
    # one ("what's up your opening hours") is not a near-miss; a changed content word is.
    function_words: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """When the brain answers (see the module docstring); the stand-in's settings fill it."""

    min_similarity: float
    min_margin: float
    lexical_threshold: float  # 0-100, the fuzzy score that answers when both matchers agree
    # 0-100: a question this close to a FAQ's wording, but below `lexical_threshold`, is that
    # FAQ's question with a word changed or added ("... for students?"): a near-miss, declined.
    near_edit: float = 101.0
    # The second view: cosine to the FAQ's question alone, and the lead over the runner-up both
    # views need (defaults: off).
    min_question_similarity: float = 2.0
    min_question_margin: float = 0.0  # > 0: both views must pick the same FAQ


@dataclass(frozen=True, slots=True)
class Decision:
    index: int | None  # the FAQ answered, or None to decline
    how: How
    similarity: float  # cosine of the closest FAQ (0 without embeddings)
    margin: float  # to the runner-up (1 with a single FAQ)
    lexical: float  # best fuzzy score


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    matched: Faq | None
    decision: Decision
    language: str


@cache
def _replies() -> dict[str, _Replies]:
    raw = resources.files(__package__).joinpath("data/replies.json").read_text(encoding="utf-8")
    return {code: _Replies.model_validate(entry) for code, entry in json.loads(raw).items()}


def _replies_for(language: str | None) -> tuple[str, _Replies]:
    table = _replies()
    if language:
        for key in (language, language.split("-")[0].lower()):
            if key in table:
                return key, table[key]
    return FALLBACK_LANGUAGE, table[FALLBACK_LANGUAGE]


def normalize(text: str) -> str:
    """For comparing wordings: NFKC, accents dropped (a recogniser or a user typing without
    them writes "telefono" for "teléfono"), case-folded, punctuation dropped, whitespace
    collapsed; invisible characters removed first."""
    text = unicodedata.normalize("NFKD", visible(text).replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


@cache
def _fillers() -> re.Pattern[str]:
    words = {normalize(w) for r in _replies().values() for w in r.fillers}
    alternatives = "|".join(sorted((re.escape(w) for w in words if w), key=len, reverse=True))
    return re.compile(rf"(?:^|(?<= ))(?:{alternatives})(?= |$)")


def strip_fillers(text: str) -> str:
    """`normalize(text)` without the filler words of any language ("hi", "por favor")."""
    return " ".join(_fillers().sub(" ", normalize(text)).split())


def fuzzy_score(user: str, question: str) -> float:
    """0-100, `ratio` on normalised text without fillers: how close the user's words are to the
    FAQ's wording ("hi, what are your opening hours please?" is the FAQ's own question).

    Only near-exact wording counts as a lexical answer: near-misses ("do you neuter dogs?" on
    "do you neuter cats?") score 80+, and a question that contains the whole FAQ question plus
    a qualifier ("... for students?") scores 100 on `partial_ratio`, so neither is used.
    """
    u, q = strip_fillers(user), strip_fillers(question)
    if not u or not q:
        return 0.0
    return float(fuzz.ratio(u, q))


@cache
def _function_words() -> frozenset[str]:
    return frozenset(normalize(w) for r in _replies().values() for w in r.function_words)


def adds_words(user: str, question: str) -> bool:
    """Whether the user's words (fillers aside) include a content word the FAQ question does
    not have.

    A near-miss adds or swaps a content word ("yearly" for "monthly", "... for students?"); a
    recogniser that drops a word ("how do i reset password") or mishears a function word ("what's
    up your opening hours") does not.
    """
    added = set(strip_fillers(user).split()) - set(strip_fillers(question).split())
    return bool(added - _function_words())


def _lead(values: npt.NDArray[np.float32], index: int) -> float:
    """How far `values[index]` is above the best of the others (1 with a single value)."""
    if len(values) < 2:
        return 1.0
    return float(values[index] - np.delete(values, index).max())


def decide(
    similarities: npt.NDArray[np.float32] | None,
    lexical: list[float],
    rule: Rule,
    edited: list[bool] | None = None,
    questions: npt.NDArray[np.float32] | None = None,
) -> Decision:
    """The answer rule on precomputed scores: one cosine (to question + answer) and one fuzzy
    score per FAQ; `edited` says per FAQ whether the question adds a word to its wording
    (default: yes); `questions`, one cosine per FAQ to its question alone (default: unused)."""
    lex_index = int(np.argmax(lexical)) if lexical else None
    lex_best = lexical[lex_index] if lex_index is not None else 0.0
    if similarities is None or len(similarities) == 0:
        if lex_index is not None and lex_best >= rule.lexical_threshold:
            return Decision(lex_index, "lexical", 0.0, 0.0, lex_best)
        return Decision(None, "declined", 0.0, 0.0, lex_best)
    order = np.argsort(-similarities, kind="stable")
    top = int(order[0])
    sim = float(similarities[top])
    margin = sim - float(similarities[order[1]]) if len(order) > 1 else 1.0
    near = [s for i, s in enumerate(lexical) if edited is None or edited[i]]
    if any(rule.near_edit <= s < rule.lexical_threshold for s in near):
        return Decision(None, "near_edit", sim, margin, lex_best)
    if sim >= rule.min_similarity and margin >= rule.min_margin:
        return Decision(top, "semantic", sim, margin, lex_best)
    # A lead in the question view means that view picks the same FAQ too.
    if (
        questions is not None
        and len(questions) == len(similarities)
        and float(questions[top]) >= rule.min_question_similarity
        and min(margin, _lead(questions, top)) >= rule.min_question_margin
    ):
        return Decision(top, "question", sim, margin, lex_best)
    if lex_index == top and lex_best >= rule.lexical_threshold:
        return Decision(top, "lexical", sim, margin, lex_best)
    return Decision(None, "declined", sim, margin, lex_best)


def _topics(faqs: list[Faq], replies: _Replies) -> str:
    named = [replies.quote.format(f.question.strip()) for f in faqs[:TOPICS_NAMED]]
    return replies.joiner.join(named)


class Brain:
    """Answers one chat turn; `embedder` None means lexical matching only."""

    def __init__(self, embedder: Embedder | None, rule: Rule) -> None:
        self.embedder = embedder
        self.rule = rule

    def answer(self, system_prompt: str, user_text: str) -> Reply:
        """Blocking (embeddings): the server calls `answer_async`."""
        language, replies = _replies_for(parse_session_language(system_prompt))
        faqs = parse_faq_block(system_prompt) or []
        if not faqs:
            return Reply(replies.no_faqs, None, Decision(None, "no_faqs", 0, 0, 0), language)
        lexical = [fuzzy_score(user_text, f.question) for f in faqs]
        sims: Similarities | None = None
        if self.embedder is not None and normalize(user_text):
            sims = self.embedder.similarities(faqs, user_text)
        edited = [adds_words(user_text, f.question) for f in faqs]
        decision = decide(
            sims.passage if sims is not None else None,
            lexical,
            self.rule,
            edited,
            sims.question if sims is not None else None,
        )
        logger.debug("%s for %r", decision, user_text)
        if decision.index is not None:
            faq = faqs[decision.index]
            return Reply(faq.answer, faq, decision, language)
        return Reply(
            replies.unknown.format(topics=_topics(faqs, replies)), None, decision, language
        )

    async def answer_async(self, system_prompt: str, user_text: str) -> Reply:
        return await asyncio.to_thread(self.answer, system_prompt, user_text)

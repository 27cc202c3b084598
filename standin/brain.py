"""The offline demo brain: a deterministic FAQ matcher, not a language model.

It reads the FAQs and the session language from the system prompt (the `common.prompt_data`
format), fuzzy-matches the last user message against the FAQ questions and answers with the
best FAQ's answer verbatim, or honestly says it does not know, in the session language.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

from pydantic import BaseModel, ConfigDict
from rapidfuzz import fuzz

from common.metadata import Faq
from common.prompt_data import parse_faq_block, parse_session_language

__all__ = ["Reply", "answer", "normalize", "score"]

logger = logging.getLogger(__name__)

FALLBACK_LANGUAGE = "en"
TOPICS_NAMED = 2
_NON_WORD = re.compile(r"[^\w']+|_")


class _Replies(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    unknown: str
    no_faqs: str
    joiner: str
    quote: str


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    matched: Faq | None
    score: float
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
    """NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("’", "'")
    return " ".join(_NON_WORD.sub(" ", text).split())


def score(user: str, question: str) -> float:
    """0-100. `ratio` on normalised text; a user text that contains the whole question with
    extra words ("hi, what are your opening hours please") also counts, via `partial_ratio`.

    `ratio` rather than `token_set_ratio`/`WRatio`: on pocketsphinx output of out-of-FAQ
    questions those score 85+ against some FAQ from a few shared function words.
    """
    u, q = normalize(user), normalize(question)
    if not u or not q:
        return 0.0
    best = fuzz.ratio(u, q)
    if len(u) > len(q):
        best = max(best, fuzz.partial_ratio(q, u))
    return float(best)


def _best(user: str, faqs: list[Faq]) -> tuple[Faq | None, float]:
    best: Faq | None = None
    best_score = 0.0
    for faq in faqs:
        s = score(user, faq.question)
        if s > best_score:
            best, best_score = faq, s
    return best, best_score


def _topics(faqs: list[Faq], replies: _Replies) -> str:
    named = [replies.quote.format(f.question.strip()) for f in faqs[:TOPICS_NAMED]]
    return replies.joiner.join(named)


def answer(system_prompt: str, user_text: str, threshold: float) -> Reply:
    """The reply to `user_text` given the FAQ block and language tag inside `system_prompt`."""
    language, replies = _replies_for(parse_session_language(system_prompt))
    faqs = parse_faq_block(system_prompt) or []
    if not faqs:
        return Reply(replies.no_faqs, None, 0.0, language)
    faq, best = _best(user_text, faqs)
    logger.debug("best FAQ score %.1f for %r", best, user_text)
    if faq is not None and best >= threshold:
        return Reply(faq.answer, faq, best, language)
    text = replies.unknown.format(topics=_topics(faqs, replies))
    return Reply(text, None, best, language)

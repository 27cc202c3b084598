"""Grades one reply against the FAQ set: which FAQ's answer it gives, if any.

Deliberately simple, so it grades the stand-in (verbatim answers) and a real model (which may
rephrase, rule 1 of prompts/instructions.md) the same way:
- both texts are normalised (`standin.brain.normalize`: case, punctuation, spacing);
- a reply gives a FAQ's answer when `partial_ratio(answer, reply) >= MATCH` (the answer, or
  something very close to it, appears in the reply); of several, the best-scoring one counts;
- `right`: that FAQ is the expected one; `wrong_faq`: another FAQ; `declined`: no FAQ's answer
  in the reply (an honest "I don't know", or anything else that gives none of the answers:
  a real model's reply that states no FAQ fact counts as declined);
- `error`: the request failed or timed out (a failure on every kind of question).
"""

from __future__ import annotations

from enum import StrEnum

from rapidfuzz import fuzz

from standin.brain import normalize

from .dataset import FaqSet

__all__ = ["MATCH", "Outcome", "given_faq", "grade"]

MATCH = 80.0


class Outcome(StrEnum):
    RIGHT = "right"
    WRONG_FAQ = "wrong_faq"
    DECLINED = "declined"
    ERROR = "error"


def given_faq(reply: str, faq_set: FaqSet) -> str | None:
    """The id of the FAQ whose answer the reply gives (best match), or None."""
    text = normalize(reply)
    if not text:
        return None
    best: tuple[float, str] | None = None
    for faq in faq_set.faqs:
        score = fuzz.partial_ratio(normalize(faq.answer), text)
        if score >= MATCH and (best is None or score > best[0]):
            best = (score, faq.id)
    return best[1] if best else None


def grade(reply: str | None, faq_set: FaqSet, expect: str | None) -> Outcome:
    """`reply` None means the request failed or timed out."""
    if reply is None:
        return Outcome.ERROR
    given = given_faq(reply, faq_set)
    if given is None:
        return Outcome.DECLINED
    return Outcome.RIGHT if given == expect else Outcome.WRONG_FAQ

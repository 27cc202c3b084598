"""The sample FAQs of the tests, the benchmarks and `python -m simuser --sample-faqs`.

Declared once so every scenario asks the same questions. Numbers are spelled out: the offline
recogniser hears words, and answers are compared as words. The stand-in's recogniser catches
these questions reliably from espeak-ng speech (README, "The offline stand-in").
"""

from __future__ import annotations

from common.metadata import Faq

__all__ = ["HOURS", "LOCATION", "PASSWORD", "PAYMENT", "SAMPLE_FAQS", "SHIPPING"]

HOURS, PASSWORD, LOCATION, PAYMENT, SHIPPING = (
    Faq(question=question, answer=answer)
    for question, answer in (
        ("What are your opening hours?", "We are open from nine to five, Monday to Friday."),
        ("How do I reset my password?", "Click forgot password on the login page."),
        ("Where is the shop located?", "On Main Street twelve, next to the bakery."),
        ("Which payment methods do you accept?", "We accept cards and cash."),
        ("Do you ship internationally?", "Yes, we ship to over forty countries."),
    )
)

# The default scenario: two questions the recogniser tells apart.
SAMPLE_FAQS: tuple[Faq, ...] = (HOURS, PASSWORD)

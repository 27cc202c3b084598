"""The sample FAQs of the tests, the benchmarks and `python -m simuser --sample-faqs`.

Declared once so every scenario asks the same questions. Numbers are spelled out: the offline
recogniser hears words, and answers are compared as words. The stand-in's recogniser catches
these questions reliably from espeak-ng speech (README, "The offline stand-in").
"""

from __future__ import annotations

from common.metadata import Faq

__all__ = ["HOURS", "LOCATION", "PASSWORD", "PAYMENT", "SAMPLE_FAQS", "SHIPPING"]

HOURS = Faq(
    question="What are your opening hours?",
    answer="We are open from nine to five, Monday to Friday.",
)
PASSWORD = Faq(
    question="How do I reset my password?",
    answer="Click forgot password on the login page.",
)
LOCATION = Faq(
    question="Where is the shop located?",
    answer="On Main Street twelve, next to the bakery.",
)
PAYMENT = Faq(
    question="Which payment methods do you accept?",
    answer="We accept cards and cash.",
)
SHIPPING = Faq(
    question="Do you ship internationally?",
    answer="Yes, we ship to over forty countries.",
)

# The default scenario: two questions the recogniser tells apart.
SAMPLE_FAQS: tuple[Faq, ...] = (HOURS, PASSWORD)

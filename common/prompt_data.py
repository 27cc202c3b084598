"""How session data is embedded in the agent's instructions, as clearly delimited data.

The FAQs are a JSON array inside `<faq_data>` tags, with `<`, `>` and `&` written as JSON unicode
escapes so that no FAQ text can close the tag and smuggle instructions out of the data block.
The offline stand-in reads the same block back, so both sides use these two functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from .metadata import Faq

__all__ = ["parse_faq_block", "parse_session_language", "render_faq_block", "render_language_tag"]

_FAQ_BLOCK = re.compile(r"<faq_data>\s*(.*?)\s*</faq_data>", re.DOTALL)
_LANGUAGE_TAG = re.compile(r"<session_language>\s*([A-Za-z-]{2,35})\s*</session_language>")
_FAQS = TypeAdapter(list[Faq])
_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def render_faq_block(faqs: Sequence[Faq]) -> str:
    payload = json.dumps(
        [{"question": f.question, "answer": f.answer} for f in faqs], ensure_ascii=False, indent=1
    )
    for char, escape in _ESCAPES.items():
        payload = payload.replace(char, escape)
    return f"<faq_data>\n{payload}\n</faq_data>"


def parse_faq_block(text: str) -> list[Faq] | None:
    """The FAQs of the last `<faq_data>` block in `text`; None when there is none or it is bad."""
    blocks = _FAQ_BLOCK.findall(text)
    if not blocks:
        return None
    try:
        return _FAQS.validate_python(json.loads(blocks[-1]))
    except (ValueError, ValidationError):
        return None


def render_language_tag(code: str) -> str:
    return f"<session_language>{code}</session_language>"


def parse_session_language(text: str) -> str | None:
    found = _LANGUAGE_TAG.findall(text)
    return found[-1] if found else None

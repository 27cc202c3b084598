"""How session data is embedded in the agent's instructions, as clearly delimited data.

The FAQs are a JSON array inside `<faq_data>` tags, with `<`, `>` and `&` written as JSON unicode
escapes so that no FAQ text can close the tag and smuggle instructions out of the data block.
The offline stand-in reads the same block back, so both sides use these two functions.

The session language has no marker of its own: the instructions tell the model, in prose, to
reply in "<name> (<native name>)" (prompts/instructions.md); `parse_session_language` reads that
back for the stand-in and the tests' fake LLM, outside the FAQ block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from .languages import LANGUAGES
from .metadata import Faq

__all__ = ["parse_faq_block", "parse_session_language", "render_faq_block"]

_FAQ_BLOCK = re.compile(r"<faq_data>\s*(.*?)\s*</faq_data>", re.DOTALL)
# "(English)", "(English (UK))", "(Español (México))": native names are unique in the table.
_NATIVE_NAME = re.compile("|".join(rf"\(({re.escape(lang.native_name)})\)" for lang in LANGUAGES))
_BY_NATIVE_NAME = {lang.native_name: lang.code for lang in LANGUAGES}
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


def parse_session_language(text: str) -> str | None:
    """The code of the first supported language named as "(<native name>)" before the FAQs."""
    match = _NATIVE_NAME.search(_FAQ_BLOCK.split(text, maxsplit=1)[0])
    if match is None:
        return None
    return _BY_NATIVE_NAME[next(g for g in match.groups() if g is not None)]

"""Session metadata: what the browser sends with `POST /api/token` and the agent reads at job start.

One pydantic model, validated strictly at the token server (a 422 names the field) and leniently
in the agent (`parse_metadata_lenient`: keep what is valid, default the rest, report the problems).
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from .languages import DEFAULT_LANGUAGE, normalize_language_code
from .validation import describe_validation_error

__all__ = [
    "MAX_ANSWER_CHARS",
    "MAX_FAQS",
    "MAX_FAQ_SET_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_QUESTION_CHARS",
    "Faq",
    "FaqList",
    "SessionMetadata",
    "clean_text",
    "faq_set_bytes",
    "parse_metadata_lenient",
]

MAX_FAQS = 50
MAX_QUESTION_CHARS = 300
MAX_ANSWER_CHARS = 1500
# One size rule for a FAQ set wherever it comes from (the token request, `set_faqs`): its compact
# JSON in UTF-8. It fits in LiveKit's 15 KiB RPC payload with the `{"faqs": ...}` around it, and
# the metadata holding it fits in MAX_METADATA_BYTES, so whatever the token server accepts,
# `set_faqs` accepts too.
MAX_FAQ_SET_BYTES = 15_000
# The token (and so the metadata inside it) travels in the WebSocket URL; the agent does not
# even parse dispatch metadata over 4x this.
MAX_METADATA_BYTES = 16 * 1024

_KEPT_CONTROLS = {"\n", "\t"}


def clean_text(value: str) -> str:
    """NFC-normalise, drop control characters (but newline and tab) and trim.

    FAQ text is pasted by people: stray control characters would only confuse the TTS and the
    prompt, so they are removed rather than refused.
    """
    value = unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    value = "".join(
        ch for ch in value if ch in _KEPT_CONTROLS or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return value.strip()


def _language(value: str) -> str:
    return normalize_language_code(value)


LanguageCode = Annotated[str, Field(min_length=1, max_length=35), AfterValidator(_language)]


class Faq(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    answer: str = Field(min_length=1, max_length=MAX_ANSWER_CHARS)

    @field_validator("question", "answer", mode="before")
    @classmethod
    def _clean(cls, value: Any) -> Any:
        return clean_text(value) if isinstance(value, str) else value


def faq_set_bytes(faqs: list[Faq]) -> int:
    dumped = [faq.model_dump(mode="json") for faq in faqs]
    return len(json.dumps(dumped, ensure_ascii=False, separators=(",", ":")).encode())


def _bounded_faq_set(faqs: list[Faq]) -> list[Faq]:
    size = faq_set_bytes(faqs)
    if size > MAX_FAQ_SET_BYTES:
        raise ValueError(f"the FAQs are {size} bytes as JSON; at most {MAX_FAQ_SET_BYTES} allowed")
    return faqs


FaqList = Annotated[list[Faq], Field(max_length=MAX_FAQS), AfterValidator(_bounded_faq_set)]


class SessionMetadata(BaseModel):
    """`{language, faqs?}` as in the frontend contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    language: LanguageCode = DEFAULT_LANGUAGE
    faqs: FaqList = Field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


def parse_metadata_lenient(raw: str | bytes | None) -> tuple[SessionMetadata, list[str]]:
    """Parse metadata as the agent must: never raise, salvage each valid field, list problems."""
    if raw is None or (isinstance(raw, str | bytes) and not raw.strip()):
        return SessionMetadata(), ["metadata is empty"]
    if len(raw) > 4 * MAX_METADATA_BYTES:
        return SessionMetadata(), [f"metadata is {len(raw)} bytes; ignored"]
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return SessionMetadata(), [f"metadata is not JSON: {exc}"]
    except RecursionError:
        # A few thousand nested brackets fit in the size bound and exhaust the parser's stack.
        return SessionMetadata(), ["metadata is nested too deeply to parse"]
    if not isinstance(data, dict):
        return SessionMetadata(), [f"metadata is a JSON {type(data).__name__}, not an object"]
    try:
        return SessionMetadata.model_validate(data), []
    except ValidationError as exc:
        problems = [describe_validation_error(exc, root="metadata")]

    kept: dict[str, Any] = {}
    for field in ("language", "faqs"):
        if field not in data:
            continue
        try:
            SessionMetadata.model_validate({field: data[field]})
        except ValidationError:
            continue
        kept[field] = data[field]
    return SessionMetadata.model_validate(kept), problems

"""Validation errors described for people: which field, what is wrong, safe to log and to send.

Field names and messages can carry text the caller chose (a JSON key is anything), so control and
invisible characters are escaped and lengths bounded: a crafted key can neither forge a log line
nor blow up an error message.
"""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

__all__ = ["DOTENV_SETTINGS", "describe_settings_error", "describe_validation_error", "printable"]

# How the services read their settings: the environment first, then `.env`; an empty variable
# counts as unset, names are case-insensitive and unknown ones (another service's) are ignored.
DOTENV_SETTINGS = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    env_ignore_empty=True,
    extra="ignore",
    case_sensitive=False,
)

_MAX_DESCRIBED_ERRORS = 5
_MAX_LOC_CHARS = 40
_MAX_MSG_CHARS = 200


def printable(text: str, limit: int) -> str:
    """`text` with invisible characters escaped (`\\n`, `\\x00`, ...), cut at `limit` characters."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[:limit])
    return shown + ("..." if len(text) > limit else "")


def describe_validation_error(exc: ValidationError, *, root: str = "payload") -> str:
    """`"faqs.0.answer: String should have at most 1500 characters; ..."`, at most five problems."""
    errors = exc.errors()
    parts = []
    for err in errors[:_MAX_DESCRIBED_ERRORS]:
        loc = ".".join(printable(str(p), _MAX_LOC_CHARS) for p in err["loc"]) or root
        parts.append(f"{loc}: {printable(err['msg'], _MAX_MSG_CHARS)}")
    if len(errors) > _MAX_DESCRIBED_ERRORS:
        parts.append(f"and {len(errors) - _MAX_DESCRIBED_ERRORS} more problems")
    return "; ".join(parts)


def describe_settings_error(exc: ValidationError, service: str) -> str:
    """One line per bad environment variable, named as set (`LIVEKIT_API_SECRET: ...`).

    Values are never shown: they may be secrets.
    """
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
        reason = "is missing" if error["type"] == "missing" else error["msg"]
        lines.append(f"  {name}: {reason.removeprefix('Value error, ')}")
    return f"invalid {service} settings (environment or .env):\n" + "\n".join(lines)

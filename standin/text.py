"""Text as the demo brain compares it."""

from __future__ import annotations

import unicodedata

__all__ = ["visible"]


def visible(text: str) -> str:
    """`text` without invisible characters (format and control: a right-to-left override, a
    zero-width space, a BOM inside a FAQ must not split or hide a word), NFC-composed."""
    kept = (c for c in text if unicodedata.category(c) not in ("Cf", "Cc") or c in "\t\n")
    return unicodedata.normalize("NFC", "".join(kept))

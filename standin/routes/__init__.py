"""One router per endpoint family."""

from __future__ import annotations

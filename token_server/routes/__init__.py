"""HTTP routes of the token server, one module per topic."""

from __future__ import annotations

from . import token

__all__ = ["token"]

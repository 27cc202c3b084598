"""Where the project keeps its caches and logs (all ignored by git)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CACHE_DIR", "LOG_DIR", "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"
LOG_DIR = CACHE_DIR / "logs"

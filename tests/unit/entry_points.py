"""Running one of our `python -m <package>` commands as a user would, for the unit tests that
check what it prints and how it exits (nothing here starts a server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ROOT", "run_module", "without_livekit_settings"]

ROOT = Path(__file__).resolve().parents[2]


def without_livekit_settings() -> dict[str, str]:
    """This process's environment minus the caller's LIVEKIT_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LIVEKIT_")}


def run_module(
    *argv: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    base: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`python -m <argv>` from `cwd` (an empty folder: no .env there) with this repository
    importable; its environment is `base` (default: `without_livekit_settings()`) plus `env`."""
    full = dict(without_livekit_settings() if base is None else base)
    full.update(env or {})
    full["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=cwd,
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

"""Docker's own .dockerignore rules, asked of `dockerignore-oracle` (tests/tools/).

The oracle is Docker's reader and matcher (moby/patternmatcher) built by scripts/bootstrap.sh, so
these tests judge the build context by the rules the builder applies, not by a copy of them.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache

import pytest

from devstack.paths import CACHE_DIR

__all__ = ["ORACLE", "DockerIgnore"]

ORACLE = CACHE_DIR / "tools" / "dockerignore-oracle"


@cache
def _oracle() -> subprocess.Popen[str]:
    if not ORACLE.exists():
        pytest.fail(f"{ORACLE} is missing: run scripts/bootstrap.sh (it builds it with Go)")
    return subprocess.Popen(
        [str(ORACLE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
    )


class DockerIgnore:
    """One .dockerignore text; `excludes(path)` is Docker's verdict for a context path."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._answers: dict[str, bool] = {}

    def excludes(self, path: str) -> bool:
        if path not in self._answers:
            proc = _oracle()
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write(json.dumps({"Ignore": self.text, "Path": path}) + "\n")
            proc.stdin.flush()
            answer = proc.stdout.readline().strip()
            assert answer in ("true", "false"), f"oracle: {answer!r} for {path!r}"
            self._answers[path] = answer == "true"
        return self._answers[path]

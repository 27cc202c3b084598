"""Per-session budgets of the RPC methods that cost provider time (a token bucket per method).

`send_text` starts an LLM and TTS turn; `set_language` speaks a line; `set_faqs` rebuilds the
instructions. A page that floods them would spend the deployer's money and drown the
conversation, so each is held to a burst and a steady rate; an exhausted budget is answered
with `429` and the session goes on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from common.protocol import RPC_SEND_TEXT, RPC_SET_FAQS, RPC_SET_LANGUAGE

__all__ = ["DEFAULT_CALL_LIMITS", "CallLimit", "CallLimiter"]


@dataclass(frozen=True, slots=True)
class CallLimit:
    burst: int  # calls allowed at once
    every_seconds: float  # then one more call per this many seconds

    def describe(self) -> str:
        return f"at most {self.burst} at once, then 1 every {self.every_seconds:g} s"


# Far above what a person types or clicks, far below a script. After a burst, the contract's
# retry (10 x 500 ms) gets the next call through.
_PER_SESSION = CallLimit(burst=5, every_seconds=3.0)
DEFAULT_CALL_LIMITS: Mapping[str, CallLimit] = {
    RPC_SEND_TEXT: _PER_SESSION,
    RPC_SET_LANGUAGE: _PER_SESSION,
    RPC_SET_FAQS: _PER_SESSION,
}


class CallLimiter:
    """One session's budgets; methods without a limit are always allowed."""

    def __init__(
        self,
        limits: Mapping[str, CallLimit] = DEFAULT_CALL_LIMITS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = dict(limits)
        self._clock = clock
        now = clock()
        self._tokens = {method: float(limit.burst) for method, limit in self._limits.items()}
        self._updated = dict.fromkeys(self._limits, now)

    def limit_of(self, method: str) -> CallLimit | None:
        return self._limits.get(method)

    def take(self, method: str) -> float:
        """Spend one call of `method`: 0.0 when allowed, else the seconds until one is (> 0)."""
        limit = self._limits.get(method)
        if limit is None:
            return 0.0
        now = self._clock()
        refill = (now - self._updated[method]) / limit.every_seconds
        tokens = min(float(limit.burst), self._tokens[method] + max(0.0, refill))
        self._updated[method] = now
        if tokens >= 1.0:
            self._tokens[method] = tokens - 1.0
            return 0.0
        self._tokens[method] = tokens
        return math.ceil((1.0 - tokens) * limit.every_seconds * 10) / 10

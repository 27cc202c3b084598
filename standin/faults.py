"""Fault injection for the team's fault tests: the next N requests of a target fail, hang or lag.

Enabled only with STANDIN_ENABLE_FAULTS=1. State lives in one `FaultInjector` owned by the app.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .errors import ApiError

__all__ = ["FaultInjector", "FaultRule", "FaultSpec", "FaultState", "Mode", "Target"]

logger = logging.getLogger(__name__)

Target = Literal["chat", "stt", "tts", "all"]
Mode = Literal["error", "hang", "slow", "off"]

# A hang with no `delay_s` lasts this long, then the request fails with 504.
DEFAULT_HANG_S = 600.0
DEFAULT_SLOW_S = 2.0


class FaultSpec(BaseModel):
    """Body of `POST /admin/faults`. `count` null: until changed; `delay_s` for slow and hang."""

    model_config = ConfigDict(extra="forbid")

    target: Target
    mode: Mode
    count: int | None = Field(default=None, ge=1)
    delay_s: float | None = Field(default=None, ge=0, le=3600)


class FaultRule(BaseModel):
    mode: Mode
    remaining: int | None
    delay_s: float


class FaultState(BaseModel):
    """Body of `GET /admin/faults`: the active rules and how many requests each has hit."""

    rules: dict[str, FaultRule]
    injected: dict[str, int]


class FaultInjector:
    def __init__(self) -> None:
        self._rules: dict[str, FaultRule] = {}
        self._injected: dict[str, int] = {}

    def set(self, spec: FaultSpec) -> FaultState:
        if spec.mode == "off":
            self._rules.pop(spec.target, None)
        else:
            default = DEFAULT_HANG_S if spec.mode == "hang" else DEFAULT_SLOW_S
            delay = spec.delay_s if spec.delay_s is not None else default
            self._rules[spec.target] = FaultRule(
                mode=spec.mode, remaining=spec.count, delay_s=delay
            )
        logger.info("fault rule set: %s", spec.model_dump())
        return self.state()

    def clear(self) -> FaultState:
        self._rules.clear()
        return self.state()

    def state(self) -> FaultState:
        return FaultState(
            rules={k: v.model_copy() for k, v in self._rules.items()}, injected=dict(self._injected)
        )

    def _take(self, target: str) -> FaultRule | None:
        for key in (target, "all"):
            rule = self._rules.get(key)
            if rule is None:
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._rules[key]
            self._injected[target] = self._injected.get(target, 0) + 1
            return rule.model_copy()
        return None

    async def apply(self, target: Literal["chat", "stt", "tts"]) -> None:
        """Called first by each endpoint: raise, hang or sleep as the matching rule says."""
        rule = self._take(target)
        if rule is None:
            return
        logger.info("injecting fault %s into %s", rule.mode, target)
        if rule.mode == "error":
            raise ApiError(500, f"injected fault: {target} error", code="injected_fault")
        await asyncio.sleep(rule.delay_s)
        if rule.mode == "hang":
            raise ApiError(504, f"injected fault: {target} hung", code="injected_fault")

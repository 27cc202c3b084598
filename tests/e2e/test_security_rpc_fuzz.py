"""Property tests of every agent RPC method against a live agent: no payload crashes it.

One real session (shared stack, real worker, real livekit-server) is fuzzed method by method
with hypothesis: random JSON of any shape, payloads shaped like the method's own but with wrong
types, text that is not JSON, unicode and control characters, deep nesting and payloads over
LiveKit's size limit. Every call must end in either a JSON answer of the documented shape or
an RPC error with a known code and a message naming the method; afterwards the same session
still answers a question and the agent's log holds no traceback.

Hypothesis runs synchronously, so each property runs in a worker thread and sends its calls to
the test's event loop, where the LiveKit room lives.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from livekit import rtc

from common.languages import LANGUAGES
from common.protocol import (
    MAX_RPC_PAYLOAD_BYTES,
    RPC_GET_STATE,
    RPC_INTERRUPT,
    RPC_METHODS,
    RPC_SEND_TEXT,
    RPC_SET_FAQS,
    RPC_SET_LANGUAGE,
    AgentStatus,
    OkResponse,
    RpcErrorCode,
)
from devstack.sample_faqs import SAMPLE_FAQS
from devstack.stack import Stack
from simuser import SimulatedUser

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

logger = logging.getLogger(__name__)

EXAMPLES_PER_METHOD = 30
CALL_TIMEOUT = 30.0
FAQS = list(SAMPLE_FAQS)
OPENING_HOURS = "nine to five"
# The shared stack logs text: each record starts with its time.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
ERROR_RECORD = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
PAYLOAD_TOO_LARGE = int(rtc.RpcError.ErrorCode.REQUEST_PAYLOAD_TOO_LARGE)

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_METHOD,
    deadline=None,
    database=None,
    # A failing example is printed as found: shrinking against a live server costs minutes.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
)

# --- payloads ----------------------------------------------------------------------------------

_text = st.text(max_size=80)
_controls = st.text(
    st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Mn"]), max_size=40
)
_unicode = st.text(st.characters(codec="utf-8"), max_size=120)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text | _controls,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def _oversized(field: str) -> st.SearchStrategy[str]:
    sizes = st.integers(MAX_RPC_PAYLOAD_BYTES - 64, 3 * MAX_RPC_PAYLOAD_BYTES)
    return sizes.map(lambda n: _dumps({field: "é" * (n // 2)}))


def _shaped(field: str, value: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """The method's own field with any value, sometimes next to an unknown field."""
    extra = st.dictionaries(_text.filter(lambda k: k != field), json_values, max_size=2)
    return st.builds(lambda v, e: _dumps({field: v, **e}), value, extra)


_faq_like = st.fixed_dictionaries(
    {"question": _unicode | json_values, "answer": _unicode | json_values},
    optional={"extra": json_values},
)
_common = st.one_of(
    json_values.map(_dumps),
    _unicode,  # mostly not JSON at all
    _controls,
    st.integers(1, 3000).map(_nested),
)

PAYLOADS: dict[str, st.SearchStrategy[str]] = {
    RPC_SET_LANGUAGE: _common
    | _shaped(
        "language", json_values | _unicode | st.sampled_from([lang.code for lang in LANGUAGES])
    )
    | _oversized("language"),
    RPC_SET_FAQS: _common
    | _shaped("faqs", st.lists(_faq_like, max_size=60) | json_values)
    | _oversized("faqs"),
    RPC_SEND_TEXT: _common
    | _shaped("text", _unicode | _controls | json_values)
    | _oversized("text"),
    RPC_INTERRUPT: _common | _shaped("reason", json_values) | _oversized("reason"),
    RPC_GET_STATE: _common | _shaped("state", json_values) | _oversized("state"),
}
# The edge cases every method gets, whatever hypothesis draws.
EXPLICIT = [
    "",
    "   ",
    "null",
    "[]",
    "{",
    '{"a":',
    "\x00",
    "\ufeff{}",
    '{"__proto__": {"admin": true}}',
    _nested(5000),
    '{"faqs": ' + _nested(2000, "{}") + "}",
    _dumps({"text": "x" * (MAX_RPC_PAYLOAD_BYTES + 1)}),
    # field names and values that would forge agent log lines if logged raw
    _dumps({"text": "hi", "\nFORGED ERROR line\r\x1b[2J\x00": 1}),
    _dumps({"language": "en\nFORGED ERROR line"}),
    _dumps({"k" * 10_000: 1}),
]


# --- the session -------------------------------------------------------------------------------


@dataclass
class Target:
    user: SimulatedUser
    agent: str
    loop: asyncio.AbstractEventLoop
    log_offset: int
    outcomes: dict[str, dict[str, int]]

    async def call(self, method: str, payload: str) -> tuple[str | None, rtc.RpcError | None]:
        try:
            response = await self.user.room.local_participant.perform_rpc(
                destination_identity=self.agent,
                method=method,
                payload=payload,
                response_timeout=CALL_TIMEOUT,
            )
        except rtc.RpcError as exc:
            return None, exc
        return response, None

    def call_from_thread(self, method: str, payload: str) -> tuple[str | None, rtc.RpcError | None]:
        future = asyncio.run_coroutine_threadsafe(self.call(method, payload), self.loop)
        return future.result(timeout=CALL_TIMEOUT + 10)


@pytest.fixture(scope="module")
async def target(stack: Stack) -> AsyncIterator[Target]:
    log_path = stack.services["agent"].log_path
    offset = log_path.stat().st_size
    user = await SimulatedUser.from_token_server(stack.token_url, language="en", faqs=FAQS)
    async with user:
        agent = await user.wait_for_agent(timeout=60)
        speaking = await user.wait_for_state("speaking", timeout=60)
        await user.wait_for_state("listening", after_seq=speaking.event.seq, timeout=60)
        yield Target(user, agent, asyncio.get_running_loop(), offset, {})


def check_outcome(
    method: str, payload: str, response: str | None, error: rtc.RpcError | None
) -> str:
    """The documented outcomes only; returns a label for the summary."""
    if error is None:
        assert response is not None
        if method == RPC_GET_STATE:
            status = AgentStatus.model_validate_json(response)
            assert status.language in {lang.code for lang in LANGUAGES}
        else:
            OkResponse.model_validate_json(response)
        return "ok"
    assert error.message, f"{method}: error {error.code} without a message"
    if error.code == PAYLOAD_TOO_LARGE:
        # LiveKit refuses it before it leaves: only ever for payloads over its limit.
        assert len(payload.encode()) > MAX_RPC_PAYLOAD_BYTES, (error.code, error.message)
        return "too large (LiveKit)"
    if error.code == RpcErrorCode.RATE_LIMITED:
        # A valid call over the session's budget (agent.call_limits): refused, nothing done.
        assert method in {RPC_SEND_TEXT, RPC_SET_LANGUAGE, RPC_SET_FAQS}, error.message
        assert error.message.startswith(f"{method}: too many calls"), error.message
        return "429"
    assert error.code == RpcErrorCode.INVALID_PAYLOAD, (
        f"{method} answered {error.code} {error.message!r} to {payload[:200]!r}"
    )
    assert error.message.startswith(f"{method}: "), error.message
    return "400"


def run_property(target: Target, method: str) -> None:
    counts = target.outcomes.setdefault(method, {})

    @FUZZ_SETTINGS
    @given(payload=PAYLOADS[method])
    def prop(payload: str) -> None:
        response, error = target.call_from_thread(method, payload)
        label = check_outcome(method, payload, response, error)
        counts[label] = counts.get(label, 0) + 1

    for explicit in reversed(EXPLICIT):
        prop = example(payload=explicit)(prop)
    prop()


@pytest.mark.parametrize("method", RPC_METHODS)
async def test_rpc_method_answers_any_payload_with_json_or_a_clear_error(
    target: Target, method: str
) -> None:
    await asyncio.to_thread(run_property, target, method)
    counts = target.outcomes[method]
    assert counts.get("400", 0) > 0, counts  # the fuzzing did reach the validation


async def test_session_survives_the_fuzzing(target: Target, stack: Stack) -> None:
    user = target.user
    # Whatever the fuzzing changed, a valid call puts it back; the agent still answers.
    await user.set_language("en")
    await user.set_faqs(FAQS)
    status = await user.get_state()
    assert (status.language, status.faq_count) == ("en", len(FAQS))
    await user.interrupt()
    await user.send_text("What are your opening hours?")
    answer = await user.wait_for_transcript(speaker="agent", contains=OPENING_HOURS, timeout=60)
    assert answer.final

    with stack.services["agent"].log_path.open("rb") as log:
        log.seek(target.log_offset)
        written = log.read().decode(errors="replace")
    assert "Traceback" not in written
    assert "internal error" not in written
    # What callers sent never shapes the log: one record per line, no control characters,
    # no line blown up by a payload.
    for line in written.splitlines():
        assert TIMESTAMP.match(line), f"a log line that is no record: {line[:200]!r}"
        assert len(line) < 4096, f"a {len(line)}-character log line: {line[:200]!r}"
        assert not CONTROLS.search(line), f"control characters in a log line: {line[:200]!r}"
    room = json.dumps(user.room.name)
    errors = [line for line in written.splitlines() if ERROR_RECORD.match(line) and room in line]
    assert not errors, errors[:5]
    logger.info("rpc fuzz outcomes: %s", target.outcomes)


def test_every_rpc_method_is_fuzzed() -> None:
    assert set(PAYLOADS) == set(RPC_METHODS)

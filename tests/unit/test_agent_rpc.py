from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import pytest
from livekit import rtc

from agent.call_limits import DEFAULT_CALL_LIMITS, CallLimit, CallLimiter
from agent.rpc import AgentRpc, RpcHandler, register_rpc_methods
from common.metadata import MAX_FAQS, Faq
from common.protocol import (
    MAX_RPC_PAYLOAD_BYTES,
    MAX_SEND_TEXT_CHARS,
    RPC_GET_STATE,
    RPC_INTERRUPT,
    RPC_METHODS,
    RPC_SEND_TEXT,
    RPC_SET_FAQS,
    RPC_SET_LANGUAGE,
    AgentState,
    AgentStatus,
    RpcErrorCode,
)

pytestmark = pytest.mark.unit

USER = "user-1"
OK = {"ok": True}


class FakeConversation:
    def __init__(self) -> None:
        self.language_code = "en"
        self.faqs: tuple[Faq, ...] = ()
        self.calls: list[tuple[str, object]] = []
        self.fail_with: Exception | None = None

    @property
    def faq_count(self) -> int:
        return len(self.faqs)

    def _record(self, name: str, value: object) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.calls.append((name, value))

    async def set_language(self, code: str) -> None:
        self._record("set_language", code)
        self.language_code = code

    async def set_faqs(self, faqs: Sequence[Faq]) -> None:
        self._record("set_faqs", list(faqs))
        self.faqs = tuple(faqs)

    async def send_text(self, text: str) -> None:
        self._record("send_text", text)

    async def interrupt(self) -> None:
        self._record("interrupt", None)


class FakeState:
    state: AgentState = "listening"
    seq = 7


class FakeRegistrar:
    def __init__(self) -> None:
        self.handlers: dict[str, RpcHandler] = {}

    def register_rpc_method(self, method_name: str, handler: RpcHandler) -> object:
        self.handlers[method_name] = handler
        return handler

    def unregister_rpc_method(self, method: str) -> None:
        del self.handlers[method]


@pytest.fixture
def conversation() -> FakeConversation:
    return FakeConversation()


@pytest.fixture
def registrar(conversation: FakeConversation) -> FakeRegistrar:
    rpc = AgentRpc()
    rpc.ready(user_identity=USER, conversation=conversation, state=FakeState())
    registrar = FakeRegistrar()
    register_rpc_methods(registrar, rpc)
    return registrar


async def call(
    registrar: FakeRegistrar, method: str, payload: object | str, caller: str = USER
) -> str:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    data = rtc.RpcInvocationData(
        request_id="req", caller_identity=caller, payload=body, response_timeout=5.0
    )
    return await registrar.handlers[method](data)


async def error_of(
    registrar: FakeRegistrar, method: str, payload: object | str, caller: str = USER
) -> rtc.RpcError:
    with pytest.raises(rtc.RpcError) as info:
        await call(registrar, method, payload, caller)
    return info.value


def test_every_method_is_registered_and_unregistered() -> None:
    registrar = FakeRegistrar()
    unregister = register_rpc_methods(registrar, AgentRpc())
    assert set(registrar.handlers) == set(RPC_METHODS)
    unregister()
    assert registrar.handlers == {}


async def test_set_language_normalises_the_code(
    registrar: FakeRegistrar, conversation: FakeConversation
) -> None:
    await call(registrar, RPC_SET_LANGUAGE, {"language": "es_mx"})
    assert conversation.calls == [("set_language", "es-MX")]


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"language": "xx"}, "unsupported language"),
        ({}, "language"),
        ({"language": 3}, "language"),
        ({"language": "en", "extra": True}, "extra"),
        ("not json", "invalid payload"),
        ("[]", "invalid payload"),
    ],
)
async def test_set_language_bad_payload_is_400_naming_the_problem(
    registrar: FakeRegistrar, conversation: FakeConversation, payload: object, named: str
) -> None:
    err = await error_of(registrar, RPC_SET_LANGUAGE, payload)
    assert err.code == RpcErrorCode.INVALID_PAYLOAD
    assert RPC_SET_LANGUAGE in err.message
    assert named in err.message
    assert conversation.calls == []


async def test_set_faqs_replaces_them(
    registrar: FakeRegistrar, conversation: FakeConversation
) -> None:
    faqs = [{"question": "Q1?", "answer": "A1."}, {"question": "Q2?", "answer": "A2."}]
    assert json.loads(await call(registrar, RPC_SET_FAQS, {"faqs": faqs})) == OK
    assert conversation.faq_count == 2


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"faqs": [{"question": "", "answer": "x"}]}, "faqs.0.question"),
        ({"faqs": [{"question": "q"}]}, "faqs.0.answer"),
        ({"faqs": [{"question": "q", "answer": "a"}] * (MAX_FAQS + 1)}, "faqs"),
        ({"faqs": "nope"}, "faqs"),
    ],
)
async def test_set_faqs_bad_payload_is_400(
    registrar: FakeRegistrar, payload: object, named: str
) -> None:
    err = await error_of(registrar, RPC_SET_FAQS, payload)
    assert err.code == RpcErrorCode.INVALID_PAYLOAD
    assert named in err.message


async def test_oversized_payload_is_refused_before_parsing(registrar: FakeRegistrar) -> None:
    err = await error_of(registrar, RPC_SET_FAQS, "x" * (MAX_RPC_PAYLOAD_BYTES + 1))
    assert err.code == RpcErrorCode.INVALID_PAYLOAD
    assert "bytes" in err.message


async def test_send_text_answers_it(
    registrar: FakeRegistrar, conversation: FakeConversation
) -> None:
    assert json.loads(await call(registrar, RPC_SEND_TEXT, {"text": "Hello?"})) == OK
    assert conversation.calls == [("send_text", "Hello?")]


@pytest.mark.parametrize("text", ["", "x" * (MAX_SEND_TEXT_CHARS + 1)])
async def test_send_text_bad_length_is_400(registrar: FakeRegistrar, text: str) -> None:
    err = await error_of(registrar, RPC_SEND_TEXT, {"text": text})
    assert err.code == RpcErrorCode.INVALID_PAYLOAD
    assert "text" in err.message


@pytest.mark.parametrize("payload", ["{}", ""])
async def test_interrupt_takes_an_empty_object(
    registrar: FakeRegistrar, conversation: FakeConversation, payload: str
) -> None:
    assert json.loads(await call(registrar, RPC_INTERRUPT, payload)) == OK
    assert conversation.calls == [("interrupt", None)]


async def test_interrupt_refuses_unknown_fields(registrar: FakeRegistrar) -> None:
    err = await error_of(registrar, RPC_INTERRUPT, {"now": True})
    assert err.code == RpcErrorCode.INVALID_PAYLOAD


async def test_get_state_reports_state_seq_language_and_faq_count(
    registrar: FakeRegistrar,
) -> None:
    await call(registrar, RPC_SET_FAQS, {"faqs": [{"question": "Q", "answer": "A"}]})
    status = AgentStatus.model_validate_json(await call(registrar, RPC_GET_STATE, {}))
    assert status == AgentStatus(state="listening", seq=7, language="en", faq_count=1)


@pytest.mark.parametrize("method", RPC_METHODS)
@pytest.mark.parametrize("caller", ["someone-else", "agent-impostor"])
async def test_only_the_rooms_user_may_call(
    registrar: FakeRegistrar, conversation: FakeConversation, method: str, caller: str
) -> None:
    err = await error_of(registrar, method, {}, caller=caller)
    assert err.code == RpcErrorCode.FORBIDDEN
    assert conversation.calls == []


async def test_before_ready_calls_get_409_and_agents_get_403() -> None:
    registrar = FakeRegistrar()
    register_rpc_methods(registrar, AgentRpc())
    err = await error_of(registrar, RPC_GET_STATE, {}, caller="user-early")
    assert err.code == RpcErrorCode.NOT_READY
    err = await error_of(registrar, RPC_GET_STATE, {}, caller="agent-other")
    assert err.code == RpcErrorCode.FORBIDDEN


async def test_unexpected_errors_become_500_and_are_logged(
    registrar: FakeRegistrar, conversation: FakeConversation, caplog: pytest.LogCaptureFixture
) -> None:
    conversation.fail_with = ValueError("secret internals")
    with caplog.at_level(logging.ERROR, logger="agent.rpc"):
        err = await error_of(registrar, RPC_SEND_TEXT, {"text": "hi"})
    assert err.code == RpcErrorCode.INTERNAL
    assert "secret internals" not in err.message
    assert any("send_text" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", RPC_METHODS)
async def test_before_ready_every_method_is_409_even_with_a_bad_payload(method: str) -> None:
    registrar = FakeRegistrar()
    register_rpc_methods(registrar, AgentRpc())
    for payload in ({}, "not json", {"text": "hi"}):
        err = await error_of(registrar, method, payload, caller="user-early")
        assert err.code == RpcErrorCode.NOT_READY


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limited_registrar(conversation: FakeConversation, clock: FakeClock) -> FakeRegistrar:
    rpc = AgentRpc(CallLimiter({RPC_SEND_TEXT: CallLimit(burst=2, every_seconds=5)}, clock=clock))
    rpc.ready(user_identity=USER, conversation=conversation, state=FakeState())
    registrar = FakeRegistrar()
    register_rpc_methods(registrar, rpc)
    return registrar


async def test_send_text_over_budget_is_429_and_the_session_goes_on(
    conversation: FakeConversation,
) -> None:
    clock = FakeClock()
    registrar = limited_registrar(conversation, clock)
    assert await call(registrar, RPC_SEND_TEXT, {"text": "one"}) == '{"ok":true}'
    assert await call(registrar, RPC_SEND_TEXT, {"text": "two"}) == '{"ok":true}'
    err = await error_of(registrar, RPC_SEND_TEXT, {"text": "three"})
    assert err.code == RpcErrorCode.RATE_LIMITED == 429
    assert "send_text" in err.message
    assert "retry in 5 s" in err.message
    assert [c for c in conversation.calls if c[0] == "send_text"] == [
        ("send_text", "one"),
        ("send_text", "two"),
    ]
    # Other methods have their own budget (none here), and time refills this one.
    assert json.loads(await call(registrar, RPC_GET_STATE, {}))["state"] == "listening"
    clock.now += 5
    assert await call(registrar, RPC_SEND_TEXT, {"text": "four"}) == '{"ok":true}'


def test_limiter_refills_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = CallLimiter({"m": CallLimit(burst=3, every_seconds=2)}, clock=clock)
    assert [limiter.take("m") for _ in range(4)] == [0.0, 0.0, 0.0, 2.0]
    clock.now += 1
    assert limiter.take("m") == 1.0
    clock.now += 1000
    assert [limiter.take("m") for _ in range(4)] == [0.0, 0.0, 0.0, 2.0]
    assert limiter.take("unlimited") == 0.0


def test_default_limits_cover_the_methods_that_spend() -> None:
    assert set(DEFAULT_CALL_LIMITS) == {RPC_SEND_TEXT, RPC_SET_LANGUAGE, RPC_SET_FAQS}


async def test_refused_payloads_spend_no_budget(conversation: FakeConversation) -> None:
    registrar = limited_registrar(conversation, FakeClock())
    for _ in range(10):
        err = await error_of(registrar, RPC_SEND_TEXT, {"text": ""})
        assert err.code == RpcErrorCode.INVALID_PAYLOAD
    assert await call(registrar, RPC_SEND_TEXT, {"text": "one"}) == '{"ok":true}'
    assert await call(registrar, RPC_SEND_TEXT, {"text": "two"}) == '{"ok":true}'

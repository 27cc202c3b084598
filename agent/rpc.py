"""The RPC methods the user's page calls on the agent: one small handler each.

Registered as soon as the agent joins the room (the page retries 10 x 500 ms), answering
`409 NOT_READY` to every method until the session has started (`ready`). Every payload is JSON
validated with the models of `common.protocol`; every response is a JSON string. Handlers raise
nothing but `rtc.RpcError`: a bad payload is `400`, a caller other than the room's user `403`,
a method over its per-session budget (`agent.call_limits`) `429`, anything unexpected `500`
(logged here, never shown in detail to the caller).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from livekit import rtc
from pydantic import BaseModel, ValidationError

from common.metadata import Faq
from common.protocol import (
    MAX_RPC_PAYLOAD_BYTES,
    RPC_GET_STATE,
    RPC_INTERRUPT,
    RPC_SEND_TEXT,
    RPC_SET_FAQS,
    RPC_SET_LANGUAGE,
    AgentState,
    AgentStatus,
    EmptyPayload,
    OkResponse,
    RpcErrorCode,
    SendTextPayload,
    SetFaqsPayload,
    SetLanguagePayload,
    is_agent_identity,
)
from common.validation import describe_validation_error

from .call_limits import CallLimiter

__all__ = [
    "AgentRpc",
    "ConversationControl",
    "RpcHandler",
    "RpcRegistrar",
    "StateView",
    "register_rpc_methods",
]

logger = logging.getLogger(__name__)

RpcHandler = Callable[[rtc.RpcInvocationData], Awaitable[str]]
_Payload = TypeVar("_Payload", bound=BaseModel)
_OK = OkResponse().model_dump_json()
# Error messages name the fields at fault; the names come from the caller, so they are bounded.


class ConversationControl(Protocol):
    """What the handlers change; `agent.conversation.Conversation` in production."""

    @property
    def language_code(self) -> str: ...

    @property
    def faq_count(self) -> int: ...

    async def set_language(self, code: str) -> None: ...

    async def set_faqs(self, faqs: Sequence[Faq]) -> None: ...

    async def send_text(self, text: str) -> None: ...

    async def interrupt(self) -> None: ...


class StateView(Protocol):
    """Where `get_state` reads the state and its seq; the `StateNotifier` in production."""

    @property
    def state(self) -> AgentState: ...

    @property
    def seq(self) -> int: ...


class RpcRegistrar(Protocol):
    """What registration needs from `rtc.LocalParticipant`."""

    def register_rpc_method(self, method_name: str, handler: RpcHandler) -> object: ...

    def unregister_rpc_method(self, method: str) -> None: ...


def _error(code: RpcErrorCode, message: str) -> rtc.RpcError:
    return rtc.RpcError(int(code), message)


def _parse(method: str, payload: str, model: type[_Payload]) -> _Payload:
    size = len(payload.encode())
    if size > MAX_RPC_PAYLOAD_BYTES:
        raise _error(
            RpcErrorCode.INVALID_PAYLOAD,
            f"{method}: payload is {size} bytes; at most {MAX_RPC_PAYLOAD_BYTES} allowed",
        )
    try:
        return model.model_validate_json(payload if payload.strip() else "{}")
    except ValidationError as exc:
        raise _error(
            RpcErrorCode.INVALID_PAYLOAD,
            f"{method}: invalid payload: {describe_validation_error(exc)}",
        ) from None


class AgentRpc:
    """The five methods, bound to one job's conversation once it is ready."""

    def __init__(self, limiter: CallLimiter | None = None) -> None:
        self._user_identity: str | None = None
        self._conversation: ConversationControl | None = None
        self._state: StateView | None = None
        self._limiter = limiter or CallLimiter()

    def ready(
        self, *, user_identity: str, conversation: ConversationControl, state: StateView
    ) -> None:
        """From now on only `user_identity` may call, and calls reach `conversation`.

        Call it once the session has started: before that, the framework fails a reply or a
        language switch from inside, and the page would see `500` instead of `409`.
        """
        self._user_identity = user_identity
        self._conversation = conversation
        self._state = state

    def handlers(self) -> dict[str, RpcHandler]:
        return {
            RPC_SET_LANGUAGE: self._guarded(RPC_SET_LANGUAGE, self.set_language),
            RPC_SET_FAQS: self._guarded(RPC_SET_FAQS, self.set_faqs),
            RPC_SEND_TEXT: self._guarded(RPC_SEND_TEXT, self.send_text),
            RPC_INTERRUPT: self._guarded(RPC_INTERRUPT, self.interrupt),
            RPC_GET_STATE: self._guarded(RPC_GET_STATE, self.get_state),
        }

    # --- the methods ----------------------------------------------------------------------
    async def set_language(self, data: rtc.RpcInvocationData) -> str:
        payload = _parse(RPC_SET_LANGUAGE, data.payload, SetLanguagePayload)
        self._check_budget(RPC_SET_LANGUAGE)
        await self._ready_conversation().set_language(payload.language)
        return _OK

    async def set_faqs(self, data: rtc.RpcInvocationData) -> str:
        payload = _parse(RPC_SET_FAQS, data.payload, SetFaqsPayload)
        self._check_budget(RPC_SET_FAQS)
        await self._ready_conversation().set_faqs(payload.faqs)
        return _OK

    async def send_text(self, data: rtc.RpcInvocationData) -> str:
        payload = _parse(RPC_SEND_TEXT, data.payload, SendTextPayload)
        self._check_budget(RPC_SEND_TEXT)
        await self._ready_conversation().send_text(payload.text)
        return _OK

    async def interrupt(self, data: rtc.RpcInvocationData) -> str:
        _parse(RPC_INTERRUPT, data.payload, EmptyPayload)
        await self._ready_conversation().interrupt()
        return _OK

    async def get_state(self, data: rtc.RpcInvocationData) -> str:
        _parse(RPC_GET_STATE, data.payload, EmptyPayload)
        conversation = self._ready_conversation()
        assert self._state is not None
        return AgentStatus(
            state=self._state.state,
            seq=self._state.seq,
            language=conversation.language_code,
            faq_count=conversation.faq_count,
        ).model_dump_json()

    # --- plumbing -------------------------------------------------------------------------
    def _ready_conversation(self) -> ConversationControl:
        if self._conversation is None:
            raise _error(RpcErrorCode.NOT_READY, "the agent is still starting; retry shortly")
        return self._conversation

    def _check_caller(self, method: str, caller: str) -> None:
        allowed = (
            caller == self._user_identity
            if self._user_identity is not None
            else not is_agent_identity(caller)
        )
        if not allowed:
            logger.warning("refused %s from %r: not the room's user", method, caller)
            raise _error(RpcErrorCode.FORBIDDEN, f"{method}: only the room's user may call")

    def _check_budget(self, method: str) -> None:
        # After the ready check and the parse: retries while the agent starts and refused
        # payloads spend nothing; only what would reach the providers does.
        wait = self._limiter.take(method)
        if wait > 0:
            limit = self._limiter.limit_of(method)
            rule = f" ({limit.describe()})" if limit is not None else ""
            raise _error(
                RpcErrorCode.RATE_LIMITED,
                f"{method}: too many calls{rule}; retry in {wait:g} s",
            )

    def _guarded(self, method: str, handler: RpcHandler) -> RpcHandler:
        async def guarded(data: rtc.RpcInvocationData) -> str:
            try:
                self._check_caller(method, data.caller_identity)
                self._ready_conversation()
                return await handler(data)
            except rtc.RpcError as exc:
                logger.info(
                    "%s from %s answered %d: %s",
                    method,
                    data.caller_identity,
                    exc.code,
                    exc.message,
                )
                raise
            except Exception:
                logger.exception("%s from %s failed", method, data.caller_identity)
                raise _error(RpcErrorCode.INTERNAL, f"{method}: internal error") from None

        guarded.__name__ = f"rpc_{method}"
        return guarded


def register_rpc_methods(participant: RpcRegistrar, rpc: AgentRpc) -> Callable[[], None]:
    """Register every method on `participant`; returns the function that unregisters them."""
    handlers = rpc.handlers()
    for name, handler in handlers.items():
        participant.register_rpc_method(name, handler)

    def unregister() -> None:
        for name in handlers:
            participant.unregister_rpc_method(name)

    return unregister

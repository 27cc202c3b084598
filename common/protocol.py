"""The wire contract between the agent and the frontend: identities, RPC methods and payloads.

Every payload is JSON. Models here are used by the agent (to validate what it receives and to
build what it sends), by the simulated user and by the tests, so both sides cannot drift apart.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .metadata import FaqList, LanguageCode

__all__ = [
    "AGENT_IDENTITY_PREFIX",
    "MAX_RPC_PAYLOAD_BYTES",
    "MAX_SEND_TEXT_CHARS",
    "RPC_AGENT_STATE_CHANGED",
    "RPC_GET_STATE",
    "RPC_INTERRUPT",
    "RPC_METHODS",
    "RPC_SEND_TEXT",
    "RPC_SET_FAQS",
    "RPC_SET_LANGUAGE",
    "TRANSCRIPTION_TOPIC",
    "AgentState",
    "AgentStateEvent",
    "AgentStatus",
    "EmptyPayload",
    "OkResponse",
    "RpcErrorCode",
    "SendTextPayload",
    "SetFaqsPayload",
    "SetLanguagePayload",
    "is_agent_identity",
]

# The frontend finds the agent as the participant whose identity starts with this; the token
# server refuses it to anyone else.
AGENT_IDENTITY_PREFIX = "agent"

TRANSCRIPTION_TOPIC = "lk.transcription"

# agent -> user
RPC_AGENT_STATE_CHANGED = "agent_state_changed"
# user -> agent
RPC_SET_LANGUAGE = "set_language"
RPC_SET_FAQS = "set_faqs"
RPC_SEND_TEXT = "send_text"
RPC_INTERRUPT = "interrupt"
RPC_GET_STATE = "get_state"
RPC_METHODS = (RPC_SET_LANGUAGE, RPC_SET_FAQS, RPC_SEND_TEXT, RPC_INTERRUPT, RPC_GET_STATE)

MAX_SEND_TEXT_CHARS = 2000
# LiveKit caps RPC payloads at 15 KiB; FAQ sets travel in one.
MAX_RPC_PAYLOAD_BYTES = 15 * 1024

AgentState = Literal["initializing", "idle", "listening", "thinking", "speaking"]


def is_agent_identity(identity: str) -> bool:
    return identity.lower().startswith(AGENT_IDENTITY_PREFIX)


class RpcErrorCode(IntEnum):
    """Application error codes of the agent's RPC methods (LiveKit reserves 1001-1999)."""

    INVALID_PAYLOAD = 400
    FORBIDDEN = 403
    NOT_READY = 409  # the agent is still starting: retry
    RATE_LIMITED = 429  # over the method's per-session budget: the message says when to retry
    INTERNAL = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentStateEvent(_Strict):
    """Payload of `agent_state_changed` (agent -> user)."""

    state: AgentState
    previous: AgentState | None
    seq: int = Field(ge=1, description="strictly increasing per session")
    timestamp: float = Field(description="unix time in milliseconds when the state changed")


class SetLanguagePayload(_Strict):
    language: LanguageCode


class SetFaqsPayload(_Strict):
    faqs: FaqList


class SendTextPayload(_Strict):
    text: str = Field(min_length=1, max_length=MAX_SEND_TEXT_CHARS)


class EmptyPayload(_Strict):
    pass


class OkResponse(_Strict):
    ok: Literal[True] = True


class AgentStatus(_Strict):
    """Response of `get_state`."""

    state: AgentState
    seq: int
    language: str
    faq_count: int

"""A simulated frontend user for the talking-avatar agent, built on the `livekit` Python SDK.

It acts as the browser contract describes (token request, `agent_state_changed` handler,
`lk.transcription` handler, RPC calls with retry, a microphone track) and records what it
receives with monotonic and wall-clock stamps. See `SimulatedUser` and `simuser.recording`.
"""

from __future__ import annotations

from .client import RPC_ATTEMPTS, RPC_RETRY_DELAY, RpcCallError, SimulatedUser
from .echo import EchoPath
from .recording import (
    AudioMark,
    ParticipantEvent,
    Recording,
    RpcCall,
    Stamp,
    StateChange,
    TranscriptStream,
    Utterance,
)
from .speech import render_speech
from .token import TokenGrant, TokenRequestError, fetch_token

__all__ = [
    "RPC_ATTEMPTS",
    "RPC_RETRY_DELAY",
    "AudioMark",
    "EchoPath",
    "ParticipantEvent",
    "Recording",
    "RpcCall",
    "RpcCallError",
    "SimulatedUser",
    "Stamp",
    "StateChange",
    "TokenGrant",
    "TokenRequestError",
    "TranscriptStream",
    "Utterance",
    "fetch_token",
    "render_speech",
]

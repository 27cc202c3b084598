"""`GET /v1/models` and `GET /healthz`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..realtime import RealtimeSessions

__all__ = ["MODELS", "router"]

router = APIRouter()

# The names the agent's settings use, plus the classic ones; any model name is accepted anyway.
MODELS = (
    "gpt-4.1-mini",
    "gpt-4o-mini",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe",
    "gpt-realtime-whisper",
    "whisper-1",
    "gpt-4o-mini-tts",
    "tts-1",
)
_CREATED = 1_700_000_000


@router.get("/v1/models")
async def list_models() -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": _CREATED, "owned_by": "standin"} for m in MODELS
        ],
    }


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str | int]:
    """Also counts the open realtime transcription sockets (none may outlive its client)."""
    sessions: RealtimeSessions = request.app.state.realtime_sessions
    return {"status": "ok", "realtime_sessions": len(sessions.open)}

"""`GET /v1/models` and `GET /healthz`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

__all__ = ["MODELS", "router"]

router = APIRouter()

# The names the agent's settings use, plus the classic ones; any model name is accepted anyway.
MODELS = (
    "gpt-4.1-mini",
    "gpt-4o-mini",
    "gpt-4o-mini-transcribe",
    "gpt-4o-transcribe",
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
async def healthz() -> dict[str, str]:
    return {"status": "ok"}

"""`POST /api/token` (mint a join token that dispatches the agent) and `GET /healthz`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Response, status
from fastapi.exceptions import RequestValidationError

from ..deps import AppSettings, limit_rate, require_api_key, require_json
from ..models import ErrorResponse, HealthResponse, TokenRequest, TokenResponse, room_error
from ..tokens import mint_token

__all__ = ["router"]

logger = logging.getLogger(__name__)

NO_STORE = "no-store"

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": ErrorResponse, "description": "bad X-API-Key"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"model": ErrorResponse, "description": "body too large"},
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"model": ErrorResponse, "description": "not JSON"},
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": ErrorResponse,
        "description": "rate limited; see the Retry-After header",
    },
}


@router.post(
    "/api/token",
    response_model=TokenResponse,
    responses=_ERRORS,
    dependencies=[Depends(limit_rate), Depends(require_api_key), Depends(require_json)],
    summary="Mint a LiveKit join token that also dispatches the avatar agent",
)
async def issue_token(
    body: TokenRequest, settings: AppSettings, response: Response
) -> TokenResponse:
    prefix = settings.effective_room_prefix
    if (problem := room_error(body.room, prefix)) is not None:
        raise RequestValidationError(
            [{"type": "room_format", "loc": ("body", "room"), "msg": problem, "input": body.room}]
        )
    issued = mint_token(
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        room=body.room,
        identity=body.identity,
        metadata=body.session_metadata,
        agent_name=settings.agent_name,
        ttl=timedelta(seconds=settings.token_ttl_seconds),
    )
    logger.info(
        "issued token room=%s identity=%s expires_at=%s",
        issued.room,
        issued.identity,
        issued.expires_at.isoformat(),
    )
    response.headers["Cache-Control"] = NO_STORE
    return TokenResponse(
        token=issued.token,
        url=settings.livekit_url,
        room=issued.room,
        identity=issued.identity,
        expires_at=issued.expires_at,
    )


@router.get("/healthz", response_model=HealthResponse, summary="Liveness probe")
async def healthz(response: Response) -> HealthResponse:
    response.headers["Cache-Control"] = NO_STORE
    return HealthResponse()

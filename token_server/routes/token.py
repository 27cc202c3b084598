"""`POST /api/token` (mint a join token that dispatches the agent) and `GET /healthz`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError

from ..deps import AppSettings, limit_rate, require_api_key, require_json
from ..models import ErrorResponse, HealthResponse, TokenRequest, TokenResponse, room_error
from ..rooms import RoomExists, RoomServiceUnavailable, SessionRooms, build_create_request
from ..tokens import mint_token

__all__ = ["router"]

logger = logging.getLogger(__name__)

NO_STORE = "no-store"

router = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"model": ErrorResponse, "description": "bad X-API-Key"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"model": ErrorResponse, "description": "body too large"},
    status.HTTP_409_CONFLICT: {
        "model": ErrorResponse,
        "description": "the room already exists: start each session in a new room",
    },
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: {"model": ErrorResponse, "description": "not JSON"},
    status.HTTP_429_TOO_MANY_REQUESTS: {
        "model": ErrorResponse,
        "description": "rate limited; see the Retry-After header",
    },
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "model": ErrorResponse,
        "description": "the LiveKit server could not be reached; retry later",
    },
}


@router.post(
    "/api/token",
    response_model=TokenResponse,
    responses=_ERRORS,
    dependencies=[Depends(limit_rate), Depends(require_api_key), Depends(require_json)],
    summary="Create a new room with the avatar agent in it and mint a join token for it",
)
async def issue_token(
    body: TokenRequest, settings: AppSettings, request: Request, response: Response
) -> TokenResponse:
    prefix = settings.effective_room_prefix
    if (problem := room_error(body.room, prefix)) is not None:
        raise RequestValidationError(
            [{"type": "room_format", "loc": ("body", "room"), "msg": problem, "input": body.room}]
        )
    metadata = body.session_metadata
    rooms: SessionRooms = request.app.state.rooms
    try:
        await rooms.open_session(
            build_create_request(
                body.room, agent_name=settings.agent_name, metadata_json=metadata.to_json()
            )
        )
    except RoomExists:
        logger.warning("refused token: room=%s already exists", body.room)
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"room {body.room!r} already exists; every session needs a new room",
        ) from None
    except RoomServiceUnavailable as exc:
        logger.error("refused token: room=%s: %s", body.room, exc)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the LiveKit server could not be reached; retry later",
        ) from None
    issued = mint_token(
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret.get_secret_value(),
        room=body.room,
        identity=body.identity,
        metadata=metadata,
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

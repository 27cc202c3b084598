"""The FastAPI application factory: routes, CORS allowlist, rate limiter and JSON error bodies.

Error bodies (documented in the README):
- 422: `{"detail": [{"type": str, "loc": ["body", <field>, ...], "msg": str}, ...]}`, one entry
  per problem; `loc` names the field (`["body", "metadata", "language"]`).
- any other 4xx/5xx: `{"detail": str}` (429 also carries `Retry-After`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .body_limit import BodySizeLimit
from .deps import API_KEY_HEADER
from .limiter import TokenRateLimit
from .models import room_pattern
from .rooms import LiveKitRooms, RoomDirectory, SessionRooms
from .routes import token
from .settings import Settings, get_settings

__all__ = ["MAX_BODY_BYTES", "create_app"]

logger = logging.getLogger(__name__)

# Metadata is capped at 16 KiB; room, identity and JSON escaping fit well within 4x that.
MAX_BODY_BYTES = 64 * 1024
_NO_STORE = {"Cache-Control": "no-store"}
_VALUE_ERROR_PREFIX = "Value error, "


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # Only type, loc and msg: echoing `input` back would return up to 64 KiB per error, and
    # pydantic's `ctx` can hold exception objects that are not JSON.
    cleaned = []
    for error in errors:
        msg = str(error.get("msg", "invalid"))
        msg = msg.removeprefix(_VALUE_ERROR_PREFIX)
        ctx = error.get("ctx") or {}
        if error.get("type") == "json_invalid" and "error" in ctx:
            msg = f"{msg}: {ctx['error']}"
        cleaned.append(
            {"type": str(error.get("type", "")), "loc": list(error.get("loc", ())), "msg": msg}
        )
    return cleaned


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": _clean_errors(exc.errors())},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        headers=_NO_STORE,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": str(exc.detail)},
        status_code=exc.status_code,
        headers={**_NO_STORE, **(exc.headers or {})},
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "internal server error"},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        headers=_NO_STORE,
    )


def create_app(
    settings: Settings | None = None,
    *,
    rate_limiter: TokenRateLimit | None = None,
    rooms: RoomDirectory | None = None,
) -> FastAPI:
    if settings is None:
        settings = get_settings()
    if rooms is None:
        rooms = LiveKitRooms(
            settings.livekit_url,
            settings.livekit_api_key,
            settings.livekit_api_secret.get_secret_value(),
        )
    session_rooms = SessionRooms(rooms)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await session_rooms.aclose()

    app = FastAPI(
        title="Avatar token server",
        summary="LiveKit join tokens that dispatch the avatar agent",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.rooms = session_rooms
    if rate_limiter is None:
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        rate_limiter = TokenRateLimit(settings.rate_limit_per_minute, redis_url=redis_url)
    app.state.rate_limiter = rate_limiter

    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    # Added last, so outermost: every answer, 413 and 429 included, carries the CORS headers.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", API_KEY_HEADER],
        expose_headers=["Retry-After"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(token.router)

    _document_room_pattern(app, settings.effective_room_prefix)
    return app


def _document_room_pattern(app: FastAPI, prefix: str) -> None:
    """Put the exact `<prefix>-<id>` rule, known only at runtime, into the OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        room = schema["components"]["schemas"]["TokenRequest"]["properties"]["room"]
        room["pattern"] = room_pattern(prefix)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

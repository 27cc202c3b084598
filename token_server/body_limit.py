"""Refuse oversized request bodies with a JSON 413 before they are buffered.

Starlette's own limiter answers in plain text; ours keeps every error body JSON. A declared
`Content-Length` over the limit is refused upfront; a chunked body is counted while read and the
route's body read fails with an `HTTPException`, which the app's JSON handler renders.
"""

from __future__ import annotations

from fastapi import HTTPException, status
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodySizeLimit"]

_DETAIL = "request body too large"


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(
                {"detail": _DETAIL},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                headers={"Cache-Control": "no-store", "Connection": "close"},
            )
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=_DETAIL)
            return message

        await self.app(scope, limited_receive, send)

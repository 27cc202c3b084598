"""ASGI middleware stamping each response with its processing time and a request id.

`X-Processing-Ms` (and OpenAI's own `openai-processing-ms`): milliseconds from the request's
arrival to the start of the response. For streamed bodies that is the time to the first byte
ready (chat: the whole answer is known before the first token; speech: the first audio chunk).
"""

from __future__ import annotations

import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["PROCESSING_HEADER", "REQUEST_ID_HEADER", "TimingMiddleware"]

PROCESSING_HEADER = "x-processing-ms"
OPENAI_PROCESSING_HEADER = "openai-processing-ms"
REQUEST_ID_HEADER = "x-request-id"


class TimingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = f"req_{uuid.uuid4().hex}"

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = f"{(time.perf_counter() - started) * 1000:.1f}".encode()
                headers = list(message.get("headers", []))
                headers += [
                    (PROCESSING_HEADER.encode(), elapsed),
                    (OPENAI_PROCESSING_HEADER.encode(), elapsed),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, stamped)

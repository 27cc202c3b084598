"""`/v1/realtime` WebSocket: streaming transcription (OpenAI's `?intent=transcription`).

Any model name is accepted (the agent sends its own); what a session does is in
`standin.realtime`. The socket is bound to one `TranscriptionSession`, closed with it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, cast

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from ..faults import FaultInjector
from ..realtime import RealtimeSessions, TranscriptionSession
from ..recognition import RecogniserFactory
from ..settings import Settings

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter()


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    state = websocket.app.state
    settings = cast(Settings, state.settings)
    sessions = cast(RealtimeSessions, state.realtime_sessions)
    await websocket.accept()

    async def send(event: dict[str, Any]) -> None:
        # The worker may finish an event after the client left: drop it.
        if websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.send_json(event)

    session = TranscriptionSession(
        factory=cast(RecogniserFactory, state.recogniser_factory),
        faults=cast(FaultInjector, state.faults),
        send=send,
        non_english=settings.stt_non_english,
    )
    sessions.open.add(session)
    logger.info(
        "realtime transcription socket opened (model=%s, %d open)",
        websocket.query_params.get("model", "-"),
        len(sessions.open),
    )
    try:
        await session.start()
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            await session.handle(message.get("text") or message.get("bytes") or b"")
    except WebSocketDisconnect:
        pass
    finally:
        await session.aclose()
        sessions.open.discard(session)
        logger.info("realtime transcription socket closed (%d open)", len(sessions.open))

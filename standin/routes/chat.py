"""`POST /v1/chat/completions`: the demo brain, streamed (SSE) or plain, in OpenAI's shapes."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from ..deps import BrainDep, FaultsDep
from ..schemas import ChatRequest

__all__ = ["router"]

router = APIRouter()

_SYSTEM_ROLES = ("system", "developer")
_WORDS = re.compile(r"\S+\s*")


def _tokens(text: str) -> int:
    """An approximation (about four characters a token): there is no tokenizer offline."""
    return max(1, round(len(text) / 4)) if text else 0


def _usage(prompt: str, completion: str) -> dict[str, int]:
    p, c = _tokens(prompt), _tokens(completion)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _chunk(
    base: dict[str, Any], delta: dict[str, str], finish: str | None, usage: bool
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        **base,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        chunk["usage"] = None
    return chunk


def _sse(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def _stream(
    base: dict[str, Any], text: str, usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    with_usage = usage is not None
    yield _sse(_chunk(base, {"role": "assistant", "content": ""}, None, with_usage))
    for word in _WORDS.findall(text):
        yield _sse(_chunk(base, {"content": word}, None, with_usage))
    yield _sse(_chunk(base, {}, "stop", with_usage))
    if usage is not None:
        yield _sse({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatRequest, brain: BrainDep, faults: FaultsDep
) -> JSONResponse | StreamingResponse:
    await faults.apply("chat")
    system = "\n".join(m.text() for m in body.messages if m.role in _SYSTEM_ROLES)
    users = [m for m in body.messages if m.role == "user"]
    user_text = users[-1].text() if users else ""
    reply = await brain.answer_async(system, user_text)
    decision = reply.decision
    headers = {
        "x-standin-match-score": f"{decision.lexical:.1f}",
        "x-standin-similarity": f"{decision.similarity:.3f}",
        "x-standin-margin": f"{decision.margin:.3f}",
        "x-standin-decision": decision.how,
        "x-standin-language": reply.language,
    }
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.model,
        "system_fingerprint": "standin",
    }
    prompt_text = "\n".join(m.text() for m in body.messages)
    usage = _usage(prompt_text, reply.text)
    if body.stream:
        include = body.stream_options is not None and body.stream_options.include_usage
        return StreamingResponse(
            _stream(base, reply.text, usage if include else None),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )
    message = {"role": "assistant", "content": reply.text, "refusal": None}
    return JSONResponse(
        {
            **base,
            "object": "chat.completion",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": usage,
        },
        headers=headers,
    )

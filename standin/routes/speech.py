"""`POST /v1/audio/speech`: espeak-ng speech as pcm/wav (streamed) or mp3/opus/aac/flac.

`stream_format: "sse"` (what the LiveKit plugin asks of gpt-4o-mini-tts) gets OpenAI's
`speech.audio.delta` / `speech.audio.done` events; otherwise the audio bytes themselves.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from ..audio import ENCODED_FORMATS, encode_pcm, streaming_wav_header
from ..deps import FaultsDep, SynthesizerDep
from ..schemas import SpeechRequest
from ..tts import SAMPLE_RATE, resolve_language

__all__ = ["router"]

router = APIRouter()

_MEDIA_TYPES = {
    "pcm": "audio/pcm",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
}


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


async def _as_sse(audio: AsyncIterator[bytes], input_chars: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in audio:
        total += len(chunk)
        event = {"type": "speech.audio.delta", "audio": base64.b64encode(chunk).decode()}
        yield f"data: {json.dumps(event)}\n\n".encode()
    out_tokens = max(1, total // 2 // 480)  # ~50 audio "tokens" a second, an approximation
    in_tokens = max(1, input_chars // 4)
    usage = {"input_tokens": in_tokens, "output_tokens": out_tokens}
    done = {"type": "speech.audio.done", "usage": {**usage, "total_tokens": sum(usage.values())}}
    yield f"data: {json.dumps(done)}\n\n".encode()


@router.post("/v1/audio/speech", response_model=None)
async def speech(
    body: SpeechRequest, synthesizer: SynthesizerDep, faults: FaultsDep
) -> Response | StreamingResponse:
    await faults.apply("tts")
    language = resolve_language(body.instructions, body.voice)
    headers = {"x-standin-language": language}
    pcm = synthesizer.stream_pcm(body.input, language, body.speed)

    if body.response_format in ENCODED_FORMATS:
        whole = b"".join([chunk async for chunk in pcm])
        encoded = await asyncio.to_thread(encode_pcm, whole, body.response_format, SAMPLE_RATE)
        if body.stream_format == "sse":
            return StreamingResponse(
                _as_sse(_prepend(encoded, _empty()), len(body.input)),
                media_type="text/event-stream",
                headers=headers,
            )
        return Response(encoded, media_type=_MEDIA_TYPES[body.response_format], headers=headers)

    # Wait for the first audio so that the response starts (and is timed) with real audio.
    first = await anext(pcm, b"")
    if body.response_format == "wav":
        first = streaming_wav_header(SAMPLE_RATE) + first
    audio = _prepend(first, pcm)
    if body.stream_format == "sse":
        return StreamingResponse(
            _as_sse(audio, len(body.input)), media_type="text/event-stream", headers=headers
        )
    return StreamingResponse(audio, media_type=_MEDIA_TYPES[body.response_format], headers=headers)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""

"""`POST /v1/audio/transcriptions`: recognition of an uploaded audio file (Whisper, pocketsphinx).

Only English is heard. For another `language`, STANDIN_STT_NON_ENGLISH decides: `empty`
(default) returns "", `english` returns the English recognition attempt.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from ..audio import AudioDecodeError, decode_to_pcm16
from ..deps import FaultsDep, RecognizerDep, SettingsDep
from ..errors import ApiError

__all__ = ["router"]

router = APIRouter()

STT_RATE = 16000


class TranscriptionForm(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    language: str | None = None
    languages: list[str] = Field(default_factory=list)
    prompt: str | None = None
    response_format: Literal["json", "text", "verbose_json"] = "json"
    temperature: float | None = Field(default=None, ge=0, le=1)
    stream: bool = False


def _form_fields(form: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for key in ("model", "language", "prompt", "response_format", "temperature", "stream"):
        value = form.get(key)
        if isinstance(value, str) and value != "":
            fields[key] = value
    fields["languages"] = [
        v for k in ("languages[]", "languages") for v in form.getlist(k) if isinstance(v, str)
    ]
    return fields


def _is_english(form: TranscriptionForm) -> bool:
    codes = [form.language] if form.language else form.languages
    return not codes or any(c.lower().split("-")[0] == "en" for c in codes)


async def _sse(text: str) -> AsyncIterator[bytes]:
    if text:
        delta = {"type": "transcript.text.delta", "delta": text}
        yield f"data: {json.dumps(delta)}\n\n".encode()
    yield f"data: {json.dumps({'type': 'transcript.text.done', 'text': text})}\n\n".encode()


@router.post("/v1/audio/transcriptions", response_model=None)
async def transcriptions(
    request: Request, recognizer: RecognizerDep, settings: SettingsDep, faults: FaultsDep
) -> Response:
    await faults.apply("stt")
    try:
        form = await request.form(max_files=1, max_fields=100)
    except Exception as exc:  # starlette raises several types for a bad multipart body
        raise ApiError(400, f"expected a multipart/form-data body: {exc}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "the multipart field 'file' (an audio file) is required",
                           param="file", code="missing_required_parameter")  # fmt: skip
        try:
            params = TranscriptionForm.model_validate(_form_fields(form))
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ApiError(400, f"{'.'.join(map(str, err['loc']))}: {err['msg']}",
                           param=str(err["loc"][0]), code="invalid_value") from None  # fmt: skip
        data = await upload.read(settings.max_upload_bytes + 1)
    finally:
        await form.close()
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, f"file is larger than {settings.max_upload_bytes} bytes", param="file")
    try:
        pcm = await asyncio.to_thread(decode_to_pcm16, data, STT_RATE)
    except AudioDecodeError as exc:
        raise ApiError(400, str(exc), param="file", code="invalid_value") from None

    duration = len(pcm) / 2 / STT_RATE
    english = _is_english(params)
    if english or settings.stt_non_english == "english":
        text = await recognizer.recognize(pcm, params.prompt)
    else:
        text = ""
    headers = {"x-standin-stt-heard": "en" if english else "none"}

    if params.stream:
        return StreamingResponse(_sse(text), media_type="text/event-stream", headers=headers)
    if params.response_format == "text":
        return PlainTextResponse(text + "\n", headers=headers)
    usage = {"type": "duration", "seconds": round(duration, 3)}
    if params.response_format == "verbose_json":
        language = "english" if english else (params.language or "")
        body: dict[str, Any] = {
            "task": "transcribe",
            "language": language,
            "duration": round(duration, 3),
            "text": text,
            "segments": [],
            "usage": usage,
        }
        return JSONResponse(body, headers=headers)
    return JSONResponse({"text": text, "usage": usage}, headers=headers)

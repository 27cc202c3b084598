"""The stand-in through the real `openai` client and the LiveKit OpenAI plugin, on loopback."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Iterator
from typing import Literal

import httpx
import numpy as np
import openai
import pytest
from livekit import rtc
from livekit.agents import llm as lk_llm
from livekit.plugins import openai as lk_openai
from threaded_server import serving

from agent.prompts import render_instructions, render_tts_instructions
from common.languages import LANGUAGES, Language, get_language
from common.metadata import Faq
from devstack.sample_faqs import HOURS, PASSWORD, SHIPPING
from standin.app import build_brain, create_app
from standin.brain import Brain
from standin.settings import Settings

pytestmark = pytest.mark.unit

FAQS = [HOURS, PASSWORD, SHIPPING]


def system_prompt(language: str = "en", faqs: list[Faq] = FAQS) -> str:
    """The agent's own instructions: the stand-in reads what production sends, nothing more."""
    return render_instructions(get_language(language), faqs)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    settings = Settings(_env_file=None, enable_faults=True, stt_concurrency=1)  # type: ignore[call-arg]
    with serving(create_app(settings), timeout_graceful_shutdown=2) as url:
        yield url + "/v1"


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=base_url, api_key="anything", max_retries=0) as c:
        yield c


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url.removesuffix("/v1"), timeout=30) as c:
        yield c


def espeak_wav(text: str, voice: str = "en-us") -> bytes:
    return subprocess.run(
        ["espeak-ng", "-v", voice, "-s", "160", "--stdout", text], capture_output=True, check=True
    ).stdout


# --- chat -------------------------------------------------------------------------------------


async def test_standin_chat_stream_answers_faq_verbatim_in_openai_shape(
    client: openai.AsyncOpenAI,
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": "what are your opening hours"},
        ],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == FAQS[0].answer
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


async def test_standin_chat_sse_ends_with_done_and_timing_headers(
    http: httpx.AsyncClient,
) -> None:
    body = {
        "model": "m",
        "stream": True,
        "messages": [{"role": "user", "content": "Do you ship internationally?"}],
    }
    resp = await http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert float(resp.headers["x-processing-ms"]) >= 0
    assert resp.headers["x-request-id"]
    events = [line for line in resp.text.splitlines() if line]
    assert events[-1] == "data: [DONE]"


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "I don't know that one."), ("es", "Eso no lo sé."), ("es-MX", "Eso no lo sé.")],
)
async def test_standin_chat_out_of_faq_is_honest_in_session_language(
    client: openai.AsyncOpenAI, language: str, expected: str
) -> None:
    resp = await client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[
            {"role": "system", "content": system_prompt(language)},
            {"role": "user", "content": "Can you tell me a joke about penguins?"},
        ],
    )
    content = resp.choices[0].message.content or ""
    assert content.startswith(expected)
    assert FAQS[0].question in content  # names a couple of the topics
    assert FAQS[1].question in content


async def test_standin_chat_without_faqs_says_it_cannot_answer(client: openai.AsyncOpenAI) -> None:
    resp = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "What are your opening hours?"}]
    )
    assert "can't answer questions yet" in (resp.choices[0].message.content or "")


async def test_standin_chat_through_livekit_plugin(base_url: str) -> None:
    model = lk_openai.LLM(model="gpt-4.1-mini", base_url=base_url, api_key="x")
    ctx = lk_llm.ChatContext()
    ctx.add_message(role="system", content=system_prompt())
    ctx.add_message(role="user", content="how do i reset my pass word")
    text = ""
    async with model.chat(chat_ctx=ctx) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                text += chunk.delta.content
    await model.aclose()
    assert text == FAQS[1].answer


@pytest.fixture(scope="module")
def brain() -> Brain:
    return build_brain(Settings(_env_file=None))  # type: ignore[call-arg]


def test_standin_brain_rejects_recognised_out_of_faq_noise(brain: Brain) -> None:
    prompt = system_prompt()
    for noise in ["what are you do", "how do i do cards", "can do do", "thank you"]:
        assert brain.answer(prompt, noise).matched is None, noise
    for heard, faq in [("well you're opening hours", 0), ("hi how do i reset password", 1)]:
        assert brain.answer(prompt, heard).matched == FAQS[faq], heard


# --- speech -----------------------------------------------------------------------------------


async def test_standin_tts_plugin_pcm_is_sane_24khz_audio(base_url: str) -> None:
    tts = lk_openai.TTS(base_url=base_url, api_key="x", response_format="pcm", voice="alloy")
    frames = [ev.frame async for ev in tts.synthesize("Our opening hours are nine to five.")]
    await tts.aclose()
    frame = rtc.combine_audio_frames(frames)
    assert frame.sample_rate == 24000
    assert frame.num_channels == 1
    samples = np.frombuffer(frame.data, dtype=np.int16).astype(np.float64)
    assert 1.0 < len(samples) / 24000 < 5.0
    assert np.sqrt(np.mean(samples**2)) > 500


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac"])
async def test_standin_tts_formats_via_openai_client(
    client: openai.AsyncOpenAI, fmt: Literal["wav", "mp3", "flac"]
) -> None:
    resp = await client.audio.speech.create(
        model="tts-1", voice="nova", input="Hola, buenos días.", response_format=fmt
    )
    data = resp.content
    assert resp.response.headers["x-standin-language"] == "es"
    assert float(resp.response.headers["x-processing-ms"]) < 5000
    if fmt == "wav":
        with wave.open(io.BytesIO(data)) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
    assert len(data) > 1000


@pytest.mark.parametrize("language", LANGUAGES, ids=lambda lang: lang.code)
async def test_standin_tts_speaks_the_language_of_the_agents_request(
    http: httpx.AsyncClient, language: Language
) -> None:
    """The voice and instructions the agent sends (no language field exists) pick the language."""
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": language.tts_voice,
        "input": "Hello",
        "instructions": render_tts_instructions(language),
        "response_format": "pcm",
    }
    resp = await http.post("/v1/audio/speech", json=body)
    assert resp.status_code == 200
    assert resp.headers["x-standin-language"] == language.code


async def test_standin_tts_language_from_instructions(http: httpx.AsyncClient) -> None:
    """Another client's voice (not one of our table's): the instructions name the language."""
    body = {
        "model": "gpt-4o-mini-tts",
        "voice": "ash",
        "input": "Bonjour",
        "instructions": "Speak warmly. language: fr",
        "response_format": "pcm",
    }
    resp = await http.post("/v1/audio/speech", json=body)
    assert resp.status_code == 200
    assert resp.headers["x-standin-language"] == "fr"
    assert resp.headers["content-type"] == "audio/pcm"


# --- transcription ----------------------------------------------------------------------------


async def test_standin_stt_round_trip_espeak_to_brain(base_url: str, brain: Brain) -> None:
    """espeak-ng -> plugin STT (FAQ questions as the prompt hint) -> brain picks that FAQ."""
    stt = lk_openai.STT(
        base_url=base_url,
        api_key="x",
        model="gpt-4o-mini-transcribe",
        language="en",
        prompt="\n".join(f.question for f in FAQS),
    )
    for faq in FAQS:
        with wave.open(io.BytesIO(espeak_wav(faq.question))) as w:
            rate = w.getframerate()
            pcm = w.readframes(10 * rate)  # espeak streams a header with a bogus length
        frame = rtc.AudioFrame(pcm, rate, 1, len(pcm) // 2)
        event = await stt.recognize(frame)
        heard = event.alternatives[0].text
        assert brain.answer(system_prompt(), heard).matched == faq, heard
    await stt.aclose()


async def test_standin_stt_json_text_and_non_english(client: openai.AsyncOpenAI) -> None:
    wav = espeak_wav("Do you ship internationally?")
    resp = await client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", wav, "audio/wav")
    )
    assert resp.text  # the general model hears something; the prompt hint makes it right
    text = await client.audio.transcriptions.create(
        model="whisper-1",
        file=("q.wav", wav, "audio/wav"),
        response_format="text",
        prompt="\n".join(f.question for f in FAQS),
    )
    assert "ship" in text
    spanish = await client.audio.transcriptions.create(
        model="whisper-1", file=("q.wav", espeak_wav("hola", "es"), "audio/wav"), language="es"
    )
    assert spanish.text == ""


# --- errors and faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kwargs"),
    [
        ("/v1/chat/completions", {"json": {"model": "m"}}),
        ("/v1/chat/completions", {"content": b"not json"}),
        ("/v1/audio/speech", {"json": {"model": "m", "voice": "a", "input": "x", "speed": 9}}),
        ("/v1/audio/speech", {"json": {"model": "m", "voice": "a", "input": "x",
                                       "response_format": "ogg"}}),
        ("/v1/audio/transcriptions", {"data": {"model": "whisper-1"}, "files": {"x": ("a", b"1")}}),
        ("/v1/audio/transcriptions", {"data": {"model": "whisper-1"},
                                      "files": {"file": ("a.wav", b"garbage")}}),
        ("/v1/audio/transcriptions", {"json": {"model": "whisper-1"}}),
        ("/v1/nope", {"json": {}}),
    ],
)  # fmt: skip
async def test_standin_bad_requests_get_openai_shaped_4xx(
    http: httpx.AsyncClient, path: str, kwargs: dict[str, object]
) -> None:
    resp = await http.post(path, **kwargs)  # type: ignore[arg-type]
    assert 400 <= resp.status_code < 500, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]


async def test_standin_faults_error_count_then_recover(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    resp = await http.post("/admin/faults", json={"target": "chat", "mode": "error", "count": 2})
    assert resp.json()["rules"]["chat"]["remaining"] == 2
    messages: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    await client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
    state = (await http.get("/admin/faults")).json()
    assert state["rules"] == {}
    assert state["injected"]["chat"] >= 2


async def test_standin_faults_slow_hang_off_and_all(
    http: httpx.AsyncClient, client: openai.AsyncOpenAI
) -> None:
    await http.post("/admin/faults", json={"target": "tts", "mode": "slow", "delay_s": 0.5})
    started = time.monotonic()
    await client.audio.speech.create(model="m", voice="alloy", input="hi", response_format="pcm")
    assert time.monotonic() - started >= 0.5
    await http.post("/admin/faults", json={"target": "tts", "mode": "off"})

    hang = {"target": "all", "mode": "hang", "count": 1, "delay_s": 1}
    await http.post("/admin/faults", json=hang)
    with pytest.raises(openai.APITimeoutError):
        await client.with_options(timeout=0.5).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert (await http.get("/admin/faults")).json()["rules"] == {}

    await http.post("/admin/faults", json={"target": "stt", "mode": "hang", "delay_s": 0.1})
    resp = await http.post(
        "/v1/audio/transcriptions", data={"model": "m"}, files={"file": ("a.wav", b"x")}
    )
    assert resp.status_code == 504
    assert resp.json()["error"]["code"] == "injected_fault"
    assert (await http.delete("/admin/faults")).json()["rules"] == {}


async def test_standin_faults_admin_is_404_when_disabled() -> None:
    app = create_app(Settings(_env_file=None, enable_faults=False))  # type: ignore[call-arg]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as c:
        resp = await c.post("/admin/faults", json={"target": "chat", "mode": "error"})
        assert (await c.post("/admin/faults", content=b"junk")).status_code == 404
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    await asyncio.sleep(0)

"""Asks every question of the eval set through an OpenAI-compatible endpoint, as the agent does.

- System prompt: `agent.prompts.render_instructions` (the agent's own instructions + FAQ block)
  for the set's session language.
- Text: the question as the user turn, through the LiveKit OpenAI plugin's `LLM.chat` (what the
  agent's `AgentSession` calls), streamed; the reply is the concatenated deltas.
- Voice (English sets, English questions): espeak-ng speaks the question with `VOICE`, not the
  project's own voice (`en-us`); sox resamples it to 16 kHz mono; the plugin's `STT.recognize`
  transcribes it with the agent's STT prompt (`agent.pipeline.stt_vocabulary_hint`) through
  `/v1/audio/transcriptions`. The agent itself streams over the realtime API by default; the
  upload path is used here because it needs no VAD or live room, and on the stand-in both
  paths reach the same recogniser. The transcript then goes through the same chat turn.
Every request has a deadline (`TIMEOUT_S`); a timeout or error is graded `error`.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

from livekit import rtc
from livekit.agents import NOT_GIVEN, APIConnectOptions, NotGivenOr
from livekit.agents import llm as lk_llm
from livekit.plugins import openai as lk_openai

from agent.pipeline import stt_vocabulary_hint
from agent.prompts import render_instructions
from common.languages import get_language

from .dataset import FaqSet, Item
from .grader import Outcome, grade

__all__ = ["TIMEOUT_S", "VOICE", "Endpoint", "ItemResult", "run_endpoint", "speak"]

logger = logging.getLogger(__name__)

TIMEOUT_S = 30.0
VOICE = "en-gb-x-rp"  # espeak-ng Received Pronunciation; the project speaks en-us
SAMPLE_RATE = 16_000
Mode = Literal["text", "voice"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    base_url: str | None  # None: the plugin's default (OpenAI)
    api_key: str
    llm_model: str
    stt_model: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    set: str
    item: str
    kind: str
    split: str
    mode: Mode
    question_language: str
    expect: str | None
    heard: str | None  # the transcript (voice only)
    reply: str | None
    outcome: Outcome
    latency_ms: float | None
    error: str | None


def speak(text: str, voice: str = VOICE) -> bytes:
    """16 kHz mono 16-bit PCM of `text` (espeak-ng | sox)."""
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True, timeout=30
    ).stdout
    raw = ["sox", "-t", "wav", "-", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed"]
    return subprocess.run(
        [*raw, "-t", "raw", "-"], input=wav, capture_output=True, check=True, timeout=30
    ).stdout


async def _chat(model: lk_openai.LLM, system: str, question: str) -> str:
    ctx = lk_llm.ChatContext()
    ctx.add_message(role="system", content=system)
    ctx.add_message(role="user", content=question)
    text = ""
    options = APIConnectOptions(max_retry=0, timeout=TIMEOUT_S)
    async with model.chat(chat_ctx=ctx, conn_options=options) as stream:
        async for chunk in stream:
            if chunk.delta and chunk.delta.content:
                text += chunk.delta.content
    return text


async def _hear(stt: lk_openai.STT, question: str) -> str:
    pcm = await asyncio.to_thread(speak, question)
    frame = rtc.AudioFrame(pcm, SAMPLE_RATE, 1, len(pcm) // 2)
    event = await stt.recognize(
        frame, conn_options=APIConnectOptions(max_retry=0, timeout=TIMEOUT_S)
    )
    return event.alternatives[0].text if event.alternatives else ""


async def _one(
    llm: lk_openai.LLM,
    stt: lk_openai.STT | None,
    system: str,
    faq_set: FaqSet,
    item: Item,
    mode: Mode,
) -> ItemResult:
    heard: str | None = None
    reply: str | None = None
    error: str | None = None
    start = time.perf_counter()
    try:
        async with asyncio.timeout(2 * TIMEOUT_S):
            question = item.text
            if stt is not None:
                heard = await _hear(stt, item.text)
                question = heard
            reply = await _chat(llm, system, question)
    except TimeoutError:
        error = "timeout"
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    latency = round((time.perf_counter() - start) * 1000, 1) if error is None else None
    return ItemResult(
        faq_set.id,
        item.id,
        item.kind.value,
        item.split.value,
        mode,
        item.language,
        item.expect,
        heard,
        reply,
        grade(reply, faq_set, item.expect),
        latency,
        error,
    )


def voice_items(faq_set: FaqSet) -> list[Item]:
    """English questions on English sets: what the voice half asks."""
    if faq_set.language != "en":
        return []
    return [i for i in faq_set.items if i.language == "en"]


async def run_endpoint(
    endpoint: Endpoint, sets: Sequence[FaqSet], modes: Sequence[Mode]
) -> list[ItemResult]:
    base_url: NotGivenOr[str] = endpoint.base_url or NOT_GIVEN
    llm = lk_openai.LLM(model=endpoint.llm_model, base_url=base_url, api_key=endpoint.api_key)
    results: list[ItemResult] = []
    try:
        for faq_set in sets:
            system = render_instructions(get_language(faq_set.language), faq_set.common_faqs)
            if "text" in modes:
                for item in faq_set.items:
                    results.append(await _one(llm, None, system, faq_set, item, "text"))
            if "voice" in modes and voice_items(faq_set):
                stt = lk_openai.STT(
                    base_url=base_url,
                    api_key=endpoint.api_key,
                    model=endpoint.stt_model,
                    language=get_language(faq_set.language).stt_language,
                    prompt=stt_vocabulary_hint(faq_set.common_faqs),
                    use_realtime=False,
                )
                try:
                    for item in voice_items(faq_set):
                        results.append(await _one(llm, stt, system, faq_set, item, "voice"))
                finally:
                    await stt.aclose()
            logger.info("%s: %s done", endpoint.name, faq_set.id)
    finally:
        await llm.aclose()
    return results


def as_dicts(results: Sequence[ItemResult]) -> list[dict[str, object]]:
    return [{**asdict(r), "outcome": r.outcome.value} for r in results]

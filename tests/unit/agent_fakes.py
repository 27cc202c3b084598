"""Hand-written fakes for the agent tests (the framework ships none).

`FaqFakeLLM` behaves like the offline stand-in's brain, from the instructions alone: it reads the
FAQ data block and the session language tag back with `common.prompt_data`, answers the newest
user message from the best matching FAQ, and says it does not know otherwise. Replies start with
`[<language>]` so tests can see which instructions were used.
"""

from __future__ import annotations

import re
from typing import Any

from livekit.agents import APIConnectOptions, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, NotGivenOr
from livekit.rtc import RpcError

from common.metadata import Faq
from common.prompt_data import parse_faq_block, parse_session_language

NOT_FOUND = "I don't have that information."
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = {"the", "a", "an", "is", "are", "what", "do", "you", "your", "of", "to", "how", "when"}


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def best_answer(question: str, faqs: list[Faq]) -> str | None:
    asked = _words(question)
    best: tuple[int, str] | None = None
    for faq in faqs:
        score = len(asked & _words(faq.question))
        if score and (best is None or score > best[0]):
            best = (score, faq.answer)
    return best[1] if best else None


class FaqFakeLLM(llm.LLM):
    def __init__(self) -> None:
        super().__init__()
        self.instructions_seen: list[str] = []

    @property
    def model(self) -> str:
        return "faq-fake"

    @property
    def provider(self) -> str:
        return "tests"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        instructions = "\n".join(
            msg.text_content or ""
            for msg in chat_ctx.messages()
            if msg.role in ("system", "developer")
        )
        self.instructions_seen.append(instructions)
        user_turns = [m.text_content or "" for m in chat_ctx.messages() if m.role == "user"]
        question = user_turns[-1] if user_turns else ""
        language = parse_session_language(instructions) or "?"
        answer = best_answer(question, parse_faq_block(instructions) or []) or NOT_FOUND
        return _FakeStream(
            self,
            chat_ctx=chat_ctx,
            tools=tools or [],
            conn_options=conn_options,
            text=f"[{language}] {answer}",
        )


class _FakeStream(llm.LLMStream):
    def __init__(
        self,
        fake: FaqFakeLLM,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
        text: str,
    ) -> None:
        super().__init__(fake, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._text = text

    async def _run(self) -> None:
        for i, piece in enumerate(self._text.split(" ")):
            self._event_ch.send_nowait(
                llm.ChatChunk(
                    id="fake",
                    delta=llm.ChoiceDelta(
                        role="assistant", content=piece if i == 0 else " " + piece
                    ),
                )
            )


class FakeRpcSender:
    """Stands in for `rtc.LocalParticipant.perform_rpc`: scripted failures, recorded calls."""

    def __init__(self, failures: list[int] | None = None, *, delay: float = 0.0) -> None:
        self.failures = list(failures or [])
        self.delay = delay
        self.calls: list[tuple[str, str, str]] = []
        self.delivered: list[str] = []

    async def perform_rpc(
        self,
        *,
        destination_identity: str,
        method: str,
        payload: str,
        response_timeout: float | None = None,
    ) -> str:
        import asyncio

        self.calls.append((destination_identity, method, payload))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failures:
            code = self.failures.pop(0)
            raise RpcError(code, f"scripted failure {code}")
        self.delivered.append(payload)
        return ""

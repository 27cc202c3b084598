"""Per-turn timing capture inside a bench agent process, written as JSON lines.

Two sources, both attached to one session:

- the stand-in's own timing headers (`X-Processing-Ms`: request arrival to response start, i.e.
  to the first byte for streams), read with an httpx response hook on the provider clients;
- the framework's per-turn latency report, `ChatMessage.metrics` of every conversation item
  (`transcription_delay`, `end_of_turn_delay`, `llm_node_ttft`, `tts_node_ttfb`, `e2e_latency`,
  `started_speaking_at`, `stopped_speaking_at`); this replaces the deprecated
  `metrics_collected` event.

One file per job process (`<dir>/<label>-<pid>.jsonl`), one small line per event, flushed at once
so the benchmark can read it while the worker runs. Lines carry the room name for correlation.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, TextIO

import httpx2
from livekit.agents import AgentSession, ConversationItemAddedEvent, llm

__all__ = ["EVENTS_DIR_ENV", "TimingLog", "attach_http_timing", "attach_turn_metrics"]

logger = logging.getLogger(__name__)

EVENTS_DIR_ENV = "BENCH_EVENTS_DIR"
PROCESSING_HEADER = "x-processing-ms"


class TimingLog:
    """Append-only JSON lines for one job process."""

    def __init__(self, path: Path, *, agent: str, room: str) -> None:
        self.path = path
        self.agent = agent
        self.room = room
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = path.open("a", encoding="utf-8", buffering=1)

    @classmethod
    def for_job(cls, *, agent: str, room: str, events_dir: str) -> TimingLog:
        return cls(Path(events_dir) / f"{agent}-{os.getpid()}.jsonl", agent=agent, room=room)

    def write(self, kind: str, **fields: Any) -> None:
        line = {"agent": self.agent, "room": self.room, "kind": kind, "wall_ms": time.time() * 1e3}
        line.update(fields)
        # One short line into the page cache: microseconds, not worth a thread hop.
        self._file.write(json.dumps(line, default=str) + "\n")

    def close(self) -> None:
        self._file.close()


def attach_http_timing(plugin: Any, log: TimingLog, label: str) -> bool:
    """Record the stand-in's processing header of every response of `plugin`'s OpenAI client.

    Reaches the plugin's `openai.AsyncClient` and its httpx client through private attributes
    (bench-only; returns False, logged, when the layout differs).
    """
    http = getattr(getattr(plugin, "_client", None), "_client", None)
    if not isinstance(http, httpx2.AsyncClient):
        logger.warning("no httpx client on %s; stand-in timing headers not captured", label)
        return False

    async def on_response(response: httpx2.Response) -> None:
        value = response.headers.get(PROCESSING_HEADER)
        log.write(
            "http",
            client=label,
            path=response.request.url.path,
            status=response.status_code,
            processing_ms=float(value) if value else None,
        )

    http.event_hooks["response"].append(on_response)
    return True


def attach_turn_metrics(session: AgentSession[Any], log: TimingLog) -> None:
    """Log `ChatMessage.metrics` of every user and assistant message of the session."""

    def on_item(ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage):
            return
        log.write(
            "item",
            role=item.role,
            text=item.text_content,
            interrupted=item.interrupted,
            metrics=dict(item.metrics or {}),
        )

    session.on("conversation_item_added", on_item)

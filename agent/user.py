"""The room's user: who it is, and what session it asked for (its metadata).

- The user is the first participant whose identity does not start with `agent` (nor is of the
  agent kind): another agent in the room is never the user.
- Session metadata comes from the job's dispatch first (it is there at job start), then from the
  user's participant metadata; it is parsed leniently (bad fields default, problems are logged).
- The token forbids the user to change its own metadata (`canUpdateOwnMetadata` false), so it is
  read once; the page changes language and FAQs with the `set_language` / `set_faqs` RPCs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Literal

from livekit import rtc

from common.metadata import SessionMetadata, parse_metadata_lenient
from common.protocol import is_agent_identity

__all__ = [
    "MetadataChoice",
    "choose_metadata",
    "is_user",
    "wait_for_user",
]

logger = logging.getLogger(__name__)

MetadataSource = Literal["dispatch", "participant", "default"]


def is_user(participant: rtc.RemoteParticipant) -> bool:
    return (
        not is_agent_identity(participant.identity)
        and participant.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    )


async def wait_for_user(
    room: rtc.Room,
    *,
    timeout: float | None = None,  # noqa: ASYNC109
) -> rtc.RemoteParticipant | None:
    """The user already in the room, or the next one to join; None after `timeout` seconds."""
    for participant in room.remote_participants.values():
        if is_user(participant):
            return participant
    joined: asyncio.Future[rtc.RemoteParticipant] = asyncio.get_running_loop().create_future()

    def _on_connected(participant: rtc.RemoteParticipant) -> None:
        if is_user(participant) and not joined.done():
            joined.set_result(participant)

    room.on("participant_connected", _on_connected)
    try:
        return await asyncio.wait_for(joined, timeout)
    except TimeoutError:
        return None
    finally:
        room.off("participant_connected", _on_connected)


@dataclass(frozen=True, slots=True)
class MetadataChoice:
    metadata: SessionMetadata
    source: MetadataSource
    problems: tuple[str, ...] = ()


def choose_metadata(dispatch: str | None, participant: str | None) -> MetadataChoice:
    """Dispatch metadata first, participant metadata as the fallback; never raises.

    A clean participant metadata wins over a dispatch metadata with problems; otherwise the
    dispatch metadata (salvaged field by field) is used whenever it is not empty.
    """
    if dispatch and dispatch.strip():
        meta, problems = parse_metadata_lenient(dispatch)
        if not problems:
            return MetadataChoice(meta, "dispatch")
        if participant and participant.strip():
            p_meta, p_problems = parse_metadata_lenient(participant)
            if not p_problems:
                return MetadataChoice(
                    p_meta, "participant", tuple(f"dispatch {p}" for p in problems)
                )
        return MetadataChoice(meta, "dispatch", tuple(f"dispatch {p}" for p in problems))
    if participant and participant.strip():
        meta, problems = parse_metadata_lenient(participant)
        return MetadataChoice(meta, "participant", tuple(f"participant {p}" for p in problems))
    return MetadataChoice(SessionMetadata(), "default", ("no dispatch or participant metadata",))

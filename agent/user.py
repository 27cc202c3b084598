"""The room's user: who it is, and what session it asked for (its metadata).

- The user is the first participant whose identity does not start with `agent` (nor is of the
  agent kind): another agent in the room is never the user.
- Session metadata comes from the job's dispatch first (it is there at job start), then from the
  user's participant metadata; it is parsed leniently (bad fields default, problems are logged).
- Later changes of the user's participant metadata reconfigure the conversation.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from livekit import rtc
from pydantic import ValidationError

from common.metadata import Faq, SessionMetadata, parse_metadata_lenient
from common.protocol import SetFaqsPayload, SetLanguagePayload, is_agent_identity
from common.validation import describe_validation_error

from .tasks import BackgroundTasks

__all__ = [
    "MetadataChoice",
    "MetadataTarget",
    "MetadataUpdate",
    "apply_metadata_update",
    "choose_metadata",
    "follow_metadata_changes",
    "is_user",
    "parse_metadata_update",
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


@dataclass(frozen=True, slots=True)
class MetadataUpdate:
    """The valid fields of a participant metadata update (None: absent or invalid)."""

    language: str | None = None
    faqs: tuple[Faq, ...] | None = None
    problems: list[str] = field(default_factory=list)


def parse_metadata_update(raw: str) -> MetadataUpdate:
    """Only the fields present and valid count: a broken update never resets the session."""
    if not raw.strip():
        return MetadataUpdate()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return MetadataUpdate(problems=[f"metadata is not JSON: {exc}"])
    except RecursionError:
        return MetadataUpdate(problems=["metadata is nested too deeply to parse"])
    if not isinstance(data, dict):
        return MetadataUpdate(problems=[f"metadata is a JSON {type(data).__name__}, not an object"])
    problems: list[str] = []
    language: str | None = None
    faqs: tuple[Faq, ...] | None = None
    if "language" in data:
        try:
            language = SetLanguagePayload.model_validate({"language": data["language"]}).language
        except ValidationError as exc:
            problems.append(describe_validation_error(exc, root="metadata"))
    if "faqs" in data:
        try:
            faqs = tuple(SetFaqsPayload.model_validate({"faqs": data["faqs"]}).faqs)
        except ValidationError as exc:
            problems.append(describe_validation_error(exc, root="metadata"))
    return MetadataUpdate(language=language, faqs=faqs, problems=problems)


class MetadataTarget(Protocol):
    @property
    def language_code(self) -> str: ...

    @property
    def faqs(self) -> tuple[Faq, ...]: ...

    async def set_language(self, code: str) -> None: ...

    async def set_faqs(self, faqs: Sequence[Faq]) -> None: ...


async def apply_metadata_update(target: MetadataTarget, update: MetadataUpdate) -> None:
    if update.problems:
        logger.warning(
            "ignoring invalid fields of the user's metadata: %s", "; ".join(update.problems)
        )
    if update.faqs is not None and update.faqs != target.faqs:
        await target.set_faqs(update.faqs)
    if update.language is not None and update.language != target.language_code:
        await target.set_language(update.language)


def follow_metadata_changes(
    room: rtc.Room, user_identity: str, target: MetadataTarget, tasks: BackgroundTasks
) -> None:
    """Apply the user's later participant metadata changes to `target`."""

    def _on_changed(participant: rtc.Participant, old: str, new: str) -> None:
        if participant.identity != user_identity:
            return
        logger.info("user metadata changed; reconfiguring")
        tasks.spawn(apply_metadata_update(target, parse_metadata_update(new)), name="metadata")

    room.on("participant_metadata_changed", _on_changed)

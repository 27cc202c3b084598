"""A readable timeline of a `Recording`, for the CLI and for test failure messages."""

from __future__ import annotations

from dataclasses import dataclass

from .recording import Recording, Stamp

__all__ = ["format_timeline"]


@dataclass(frozen=True, slots=True)
class _Line:
    at: Stamp
    text: str


def _clip(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def format_timeline(rec: Recording, origin: Stamp | None = None) -> str:
    """One line per event, sorted by arrival, times in seconds since `origin` (or connect)."""
    lines: list[_Line] = []
    for p in rec.participants:
        label = {"present": "present at join", "joined": "joined", "left": "left"}.get(p.kind)
        if label is None:
            lines.append(_Line(p.at, f"disconnected ({p.detail})"))
        else:
            lines.append(_Line(p.at, f"participant {p.identity} {label}"))
    for s in rec.states:
        e = s.event
        lines.append(
            _Line(
                s.received,
                f"state #{e.seq} {e.previous or '-'} -> {e.state} (+{s.latency_ms:.0f} ms)",
            )
        )
    for payload, at, err in rec.invalid_states:
        lines.append(_Line(at, f"INVALID state payload {_clip(payload, 60)}: {_clip(err, 60)}"))
    for t in rec.transcripts:
        kind = "transcript" if t.is_transcription else "text stream (no track id, ignored)"
        flag = "final" if t.final else "interim"
        end = t.ended.since(t.started) if t.ended else float("nan")
        lines.append(
            _Line(
                t.started,
                f"{kind} {t.participant} [{flag}, seg {t.segment_id}, {t.chunks} chunks, "
                f"{end:.2f}s]: {_clip(t.text)!r}" + (f" ERROR {t.error}" if t.error else ""),
            )
        )
    for c in rec.rpc_calls:
        outcome = (
            f"-> {_clip(c.response or '', 70)!r}"
            if c.ok
            else f"FAILED {c.error_code} {c.error_message}"
        )
        lines.append(
            _Line(
                c.started,
                f"rpc {c.method}({_clip(c.payload, 50)}) {outcome} "
                f"[{c.attempts} tries, {c.ended.since(c.started) * 1000:.0f} ms]",
            )
        )
    for u in rec.utterances:
        lines.append(
            _Line(
                u.started,
                f"said {_clip(u.source, 60)!r} ({u.duration:.2f}s, speech ended at "
                f"{u.speech_ended.since(origin or rec.connected or u.started):.3f}s)",
            )
        )
    if rec.agent_audio_voiced:
        first = rec.agent_audio_voiced[0]
        lines.append(_Line(first.at, "first non-silent agent audio frame"))
    if not lines:
        return "(nothing recorded)"
    lines.sort(key=lambda line: line.at.mono)
    zero = origin or rec.connected or lines[0].at
    return "\n".join(f"{line.at.since(zero):8.3f}s  {line.text}" for line in lines)

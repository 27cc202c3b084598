"""What we say before the framework's CLI runs: `console` without sound, and `dev`'s warning.

`cli.run_app` is livekit-agents' own CLI (`dev`, `start`, `console`, `download-files`). Two of its
behaviours confuse a newcomer: `console` dies with a PortAudio traceback on a machine without the
library (a server, a container, CI), and `dev` logs that dev mode is deprecated in favour of
LiveKit's Go CLI (`lk agent dev`), which reads like something is broken when it is not.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType

__all__ = [
    "CONSOLE_NEEDS_SOUND",
    "DEV_NOTE",
    "WORKER_COMMANDS",
    "console_problem",
    "missing_livekit_credentials",
    "note_for",
]

# The commands that connect a worker to LiveKit (and so need its key and secret).
WORKER_COMMANDS = frozenset({"start", "dev", "connect"})

CONSOLE_NEEDS_SOUND = (
    "agent: `python -m agent console` talks through this machine's microphone and speakers, "
    "and needs the PortAudio library ({reason}).\n"
    "  Install it on a machine with sound: apt-get install libportaudio2 (macOS: brew install "
    "portaudio).\n"
    "  Without a sound device, run `make dev` and talk to the agent from the playground page, "
    "or from a shell with `python -m simuser --say '<question>'`."
)

DEV_NOTE = (
    "agent: `python -m agent dev` is livekit-agents' Python CLI, supported in 1.8 and what "
    "`make dev` runs. Its 'dev mode is deprecated ... use `lk agent dev`' warning points at "
    "LiveKit's Go CLI, which runs the same worker; nothing is wrong. It has no hot reload: "
    "restart after a code change."
)


def command_of(argv: Sequence[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def console_problem(
    import_module: Callable[[str], ModuleType] = importlib.import_module,
) -> str | None:
    """Why `console` cannot run here (one message), or None when PortAudio loads."""
    try:
        import_module("sounddevice")
    except (OSError, ImportError) as exc:
        return CONSOLE_NEEDS_SOUND.format(reason=str(exc) or type(exc).__name__)
    return None


def missing_livekit_credentials(key: str | None, secret_set: bool) -> str | None:
    """One line naming the missing LiveKit credentials of a worker command, or None.

    Without them the framework logs a traceback and exits 0, which reads as a clean stop.
    """
    given = (("LIVEKIT_API_KEY", bool(key)), ("LIVEKIT_API_SECRET", secret_set))
    missing = [name for name, ok in given if not ok]
    if not missing:
        return None
    return (
        f"agent: {' and '.join(missing)} not set (environment or .env): the worker needs the "
        "key and secret of the LiveKit server at LIVEKIT_URL; `make dev` passes its own"
    )


def note_for(argv: Sequence[str]) -> tuple[str | None, bool]:
    """(what to print first, whether to stop) for the command line `argv` (without argv[0])."""
    command = command_of(argv)
    if "--help" in argv:
        return None, False
    if command == "console":
        problem = console_problem()
        return problem, problem is not None
    if command == "dev":
        return DEV_NOTE, False
    return None, False

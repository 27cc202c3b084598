"""`python -m agent dev | start | console | download-files`: the livekit-agents CLI."""

from __future__ import annotations

import sys
import warnings

from livekit.agents import cli

from .cli_notes import WORKER_COMMANDS, command_of, missing_livekit_credentials, note_for
from .settings import SettingsError, get_settings
from .worker import build_server, gave_up_connecting

# Commands that serve users; `download-files` (run at image build, with no secrets) is not one.
_SERVING_COMMANDS = frozenset({"start", "dev", "console", "connect"})

# `cli.run_app` is the framework's documented CLI for these four commands; it warns that the
# LiveKit Go CLI (`lk agent ...`) is the newer front end. Both run the same worker.
warnings.filterwarnings(
    "ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning
)


def main(argv: list[str]) -> None:
    note, stop = note_for(argv)
    if note is not None:
        print(note, file=sys.stderr, flush=True)
    if stop:
        sys.exit(2)
    try:
        settings = get_settings()
    except SettingsError as exc:
        sys.exit(f"agent: {exc}")
    if "--help" not in argv:
        command = command_of(argv)
        if command in WORKER_COMMANDS:
            problem = missing_livekit_credentials(
                settings.livekit_api_key, settings.livekit_api_secret is not None
            )
            if problem is not None:
                sys.exit(problem)
        if command in _SERVING_COMMANDS and (problem := settings.missing_provider()) is not None:
            sys.exit(f"agent: refusing to start: {problem}")
    server = build_server(settings)
    try:
        cli.run_app(server)  # ends in typer's sys.exit(0), also after giving up on LiveKit
    finally:
        if gave_up_connecting(server):
            # A supervisor must see the failure (this replaces the exit status 0).
            sys.exit(
                f"agent: gave up reaching livekit-server at {settings.livekit_url} after "
                f"{settings.agent_connect_max_retries} failed attempts "
                "(AGENT_CONNECT_MAX_RETRIES)"
            )


if __name__ == "__main__":
    main(sys.argv[1:])

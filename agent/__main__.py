"""`python -m agent dev | start | console | download-files`: the livekit-agents CLI."""

from __future__ import annotations

import sys
import warnings

from livekit.agents import cli

from .settings import SettingsError, get_settings
from .worker import build_server

# Commands that serve users; `download-files` (run at image build, with no secrets) is not one.
_SERVING_COMMANDS = frozenset({"start", "dev", "console", "connect"})

# `cli.run_app` is the framework's documented CLI for these four commands; it warns that the
# LiveKit Go CLI (`lk agent ...`) is the newer front end. Both run the same worker.
warnings.filterwarnings(
    "ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning
)


def main() -> None:
    try:
        settings = get_settings()
    except SettingsError as exc:
        raise SystemExit(f"agent: {exc}") from None
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command in _SERVING_COMMANDS and (problem := settings.missing_provider()) is not None:
        raise SystemExit(f"agent: refusing to start: {problem}")
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main()

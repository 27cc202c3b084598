"""`python -m agent dev | start | console | download-files`: the livekit-agents CLI."""

from __future__ import annotations

import sys
import warnings

from livekit.agents import cli

from .cli_notes import note_for
from .worker import build_server

# `cli.run_app` is the framework's documented CLI for these four commands; it warns that the
# LiveKit Go CLI (`lk agent ...`) is the newer front end. Both run the same worker.
warnings.filterwarnings(
    "ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning
)

if __name__ == "__main__":
    note, stop = note_for(sys.argv[1:])
    if note is not None:
        print(note, file=sys.stderr, flush=True)
    if stop:
        sys.exit(2)
    cli.run_app(build_server())

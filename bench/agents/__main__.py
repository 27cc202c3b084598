"""`python -m bench.agents ours|baseline start`: run one of the bench agent workers."""

from __future__ import annotations

import sys
import warnings

from livekit.agents import AgentServer, cli

warnings.filterwarnings(
    "ignore", message="the built-in Python CLI is deprecated", category=DeprecationWarning
)


def _server(which: str) -> AgentServer:
    if which == "ours":
        from .ours import build_server

        return build_server()
    if which == "baseline":
        from .baseline import build_server as build_baseline

        return build_baseline()
    raise SystemExit(f"usage: python -m bench.agents ours|baseline start (not {which!r})")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m bench.agents ours|baseline start")
    server = _server(sys.argv.pop(1))
    cli.run_app(server)

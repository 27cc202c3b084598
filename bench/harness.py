"""What every benchmark's `main` does before and around its measurement, written once.

- `start_run`: its own options on top of the shared ones (`--results-dir`, `--seed`,
  `--verbose`), logging, the seeded random generator and the result file with its parameters.
- `int_list`: the type of a comma-separated option (`--steps 1,5,10`).
- `user_stack`: the stand-in and the token server with no rate limit; the benchmark adds its
  own agent worker(s): `our_agent` is our worker on a stack's livekit-server.
- `running`: start the stacks, then the extra services; stop them all in reverse, whatever happens.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from devstack.paths import CACHE_DIR
from devstack.service import Service
from devstack.stack import Stack, StackConfig

from .common import ResultFile, base_parser, setup_logging
from .stacks import bench_agent_service

__all__ = [
    "AGENT_START_TIMEOUT",
    "BenchRun",
    "int_list",
    "our_agent",
    "running",
    "start_run",
    "user_stack",
]

# Generous: the first job process imports the whole pipeline on a shared 2-core machine.
AGENT_START_TIMEOUT = 120.0
NO_RATE_LIMIT = {"RATE_LIMIT_PER_MINUTE": "100000"}


@dataclass(frozen=True)
class BenchRun:
    args: argparse.Namespace
    rng: random.Random
    result: ResultFile


def start_run(
    name: str,
    description: str,
    add_options: Callable[[argparse.ArgumentParser], None],
    parameters: Callable[[argparse.Namespace], dict[str, Any]],
    argv: list[str] | None = None,
) -> BenchRun:
    """Parse the command line (`argv`, else `sys.argv`), set up logging, open the result file."""
    parser = base_parser(description)
    add_options(parser)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    result = ResultFile(name, parameters(args), results_dir=args.results_dir)
    return BenchRun(args=args, rng=random.Random(args.seed), result=result)


def int_list(text: str) -> list[int]:
    """argparse type of `1,5,10`."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,5,10, got {text!r}") from None


def our_agent(stack: Stack, bench: str, env: dict[str, str] | None = None) -> Service:
    """Our worker (`bench.agents ours`) on `stack`, writing its events for benchmark `bench`."""
    return bench_agent_service(
        stack,
        "ours",
        agent_name=stack.config.agent_name,
        events_dir=CACHE_DIR / "bench-events" / bench,
        env=env,
    )


def user_stack() -> Stack:
    """Stand-in and token server (no rate limit) on free ports, with no agent of its own."""
    return Stack(StackConfig(services=("standin", "token_server"), env=dict(NO_RATE_LIMIT)))


@contextmanager
def running(stacks: Iterable[Stack], services: Iterable[Service] = ()) -> Iterator[None]:
    """The stacks started in order, then the services; everything stopped in reverse on exit."""
    with ExitStack() as cleanup:
        for stack in stacks:
            cleanup.enter_context(stack)
        for service in services:
            cleanup.callback(service.stop)  # registered first: a failed start is cleaned up too
            service.start(timeout=AGENT_START_TIMEOUT)
        yield

"""The benchmarks' shared harness: command line, result file, start and stop order."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

import pytest

from bench.harness import int_list, running, start_run, user_stack
from devstack.service import Service

pytestmark = pytest.mark.unit


def test_start_run_adds_shared_options_and_records_parameters(tmp_path: Path) -> None:
    def options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--turns", type=int, default=3)

    argv = ["--turns", "5", "--seed", "11", "--results-dir", str(tmp_path)]
    run = start_run("demo", "a demo", options, lambda a: {"turns": a.turns}, argv=argv)
    assert run.args.turns == 5
    assert run.result.parameters == {"turns": 5}
    assert run.result.json_path == tmp_path / "demo.json"
    again = start_run("demo", "a demo", options, lambda a: {}, argv=argv)
    assert run.rng.random() == again.rng.random(), "seeded from --seed"


def test_user_stack_runs_stand_in_and_token_server_without_rate_limit() -> None:
    stack = user_stack()
    assert list(stack.services) == ["standin", "token_server"]
    assert stack.env["RATE_LIMIT_PER_MINUTE"] == "100000"


class _Recorder:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def start(self, timeout: float = 60.0) -> None:
        self.log.append(f"start {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def test_running_starts_in_order_and_stops_everything_in_reverse() -> None:
    log: list[str] = []
    stacks = [cast(Any, _Recorder("stack", log))]
    services = [cast(Service, _Recorder("a", log)), cast(Service, _Recorder("b", log))]
    with running(stacks, services):
        log.append("measure")
    assert log == ["start stack", "start a", "start b", "measure", "stop b", "stop a", "stop stack"]


def test_running_cleans_up_when_a_service_fails_to_start() -> None:
    log: list[str] = []
    stacks = [cast(Any, _Recorder("stack", log))]
    services = [cast(Service, _Recorder("a", log)), cast(Service, _Recorder("b", log, fail=True))]
    with pytest.raises(RuntimeError, match="b did not start"), running(stacks, services):
        log.append("measure")
    assert "measure" not in log
    assert log[-3:] == ["stop b", "stop a", "stop stack"]


def test_int_list_parses_comma_separated_integers() -> None:
    assert int_list("1,5,10") == [1, 5, 10]
    with pytest.raises(argparse.ArgumentTypeError, match="1,x"):
        int_list("1,x")

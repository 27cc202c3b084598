"""Every `python -m <package>` helps a newcomer: `--help` prints usage and exits 0 (without
starting anything), and the agent's console/dev commands say what they need or mean."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest
from entry_points import run_module

from agent.cli_notes import DEV_NOTE, console_problem, missing_livekit_credentials, note_for

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("package", ["standin", "token_server", "agent", "devstack", "simuser"])
def test_help_prints_usage_and_exits_zero(package: str, tmp_path: Path) -> None:
    # From an empty folder with no LiveKit settings: help must not need any configuration.
    result = run_module(package, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower(), result.stdout
    assert f"python -m {package}" in result.stdout, result.stdout


@pytest.mark.parametrize("package", ["standin", "token_server", "devstack"])
def test_service_help_lists_its_variables(package: str, tmp_path: Path) -> None:
    result = run_module(package, "--help", cwd=tmp_path, base=os.environ)
    expected = {"standin": "STANDIN_PORT", "token_server": "LIVEKIT_API_SECRET"}
    expected["devstack"] = "LIVEKIT_URL=wss://<project>.livekit.cloud"
    assert expected[package] in result.stdout


def _no_portaudio(name: str) -> ModuleType:
    raise OSError("PortAudio library not found")


def test_console_without_portaudio_says_why_and_what_to_install() -> None:
    problem = console_problem(_no_portaudio)
    assert problem is not None
    assert "PortAudio library not found" in problem
    assert "apt-get install libportaudio2" in problem
    assert "simuser" in problem  # and what to use without a sound device


def test_console_with_portaudio_goes_on() -> None:
    assert console_problem(lambda name: ModuleType(name)) is None


def test_dev_gets_our_word_on_the_deprecation_warning_and_help_gets_none() -> None:
    assert note_for(["dev"]) == (DEV_NOTE, False)
    assert "lk agent dev" in DEV_NOTE
    assert note_for(["dev", "--help"]) == (None, False)
    assert note_for(["start"]) == (None, False)


def test_worker_without_livekit_credentials_names_them() -> None:
    both = missing_livekit_credentials(None, secret_set=False)
    assert both is not None
    assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET" in both
    assert missing_livekit_credentials("devkey", secret_set=False) == both.replace(
        "LIVEKIT_API_KEY and ", ""
    )
    assert missing_livekit_credentials("devkey", secret_set=True) is None


def test_agent_start_alone_says_what_is_missing_and_fails(tmp_path: Path) -> None:
    """The framework alone logs a traceback and exits 0; ours is one line and a failure."""
    result = run_module("agent", "start", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        missing_livekit_credentials(None, secret_set=False)
    ]

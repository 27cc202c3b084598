"""`make dev`'s choice of LiveKit: local with a generated secret, or remote with the user's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from entry_points import ROOT, run_module

from devstack.dev_env import DevConfigError, is_loopback_url, livekit_target

pytestmark = pytest.mark.unit

GENERATED = "g" * 43
CLOUD = "wss://my-project-abc123.livekit.cloud"


def _generated() -> str:
    return GENERATED


def test_no_url_means_the_local_server_with_devkey_and_the_generated_secret() -> None:
    target = livekit_target({}, _generated)
    assert target.run_local
    assert target.url == "ws://127.0.0.1:7880"
    assert (target.server.api_key, target.server.api_secret) == ("devkey", GENERATED)


def test_a_loopback_url_keeps_the_local_server_on_its_port_and_the_users_secret() -> None:
    target = livekit_target(
        {"LIVEKIT_URL": "ws://localhost:7990", "LIVEKIT_API_SECRET": "s" * 40}, _generated
    )
    assert target.run_local
    assert target.server.port == 7990
    assert target.server.api_secret == "s" * 40


@pytest.mark.parametrize(
    "env",
    [
        {"LIVEKIT_URL": CLOUD},
        {"LIVEKIT_URL": CLOUD, "LIVEKIT_API_KEY": "APIabc"},
        {"LIVEKIT_URL": CLOUD, "LIVEKIT_API_SECRET": "s" * 40},
    ],
)
def test_a_remote_url_without_its_key_and_secret_is_refused_in_one_line(
    env: dict[str, str],
) -> None:
    def never() -> str:
        raise AssertionError("a remote LiveKit must never be signed with the local secret")

    with pytest.raises(DevConfigError) as info:
        livekit_target(env, never)
    message = str(info.value)
    assert "\n" not in message
    assert CLOUD in message
    for name in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
        assert (name in message) is (name not in env), message


def test_a_remote_url_with_key_and_secret_skips_the_local_server() -> None:
    env = {"LIVEKIT_URL": CLOUD, "LIVEKIT_API_KEY": "APIabc", "LIVEKIT_API_SECRET": "s" * 40}
    target = livekit_target(env, _generated)
    assert not target.run_local
    assert target.url == CLOUD
    assert (target.server.api_key, target.server.api_secret) == ("APIabc", "s" * 40)


def test_a_url_that_is_not_livekit_is_refused() -> None:
    with pytest.raises(DevConfigError, match="not a LiveKit URL"):
        livekit_target({"LIVEKIT_URL": "my-project.livekit.cloud"}, _generated)


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("ws://127.0.0.1:7880", True),
        ("ws://127.3.4.5:7880", True),
        ("ws://localhost:7880", True),
        ("ws://[::1]:7880", True),
        ("wss://x.livekit.cloud", False),
        ("ws://10.0.0.2:7880", False),
    ],
)
def test_loopback_urls(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_devstack_refuses_cloud_without_secret_before_starting_anything(tmp_path: Path) -> None:
    """The real command: one line on stderr, exit 2, no server started (it would hang here)."""
    dotenv = ROOT / ".env"
    if dotenv.exists() and "LIVEKIT_API_SECRET=" in dotenv.read_text():
        pytest.skip(".env sets LIVEKIT_API_SECRET: the command would start for real")
    result = run_module(
        "devstack", cwd=tmp_path, env={"LIVEKIT_URL": CLOUD, "LIVEKIT_API_KEY": "APIabc"}
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("make dev: LIVEKIT_URL is wss://")
    assert "LIVEKIT_API_SECRET" in lines[0]

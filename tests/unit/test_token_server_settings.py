"""token_server.settings: env names, defaults, refusal to start without a usable key/secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from entry_points import run_module
from pydantic import SecretStr

from token_server.settings import Settings, SettingsError, get_settings, load_settings

pytestmark = pytest.mark.unit

GOOD_SECRET = "s" * 32


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    # `.env` is read from the working directory: use an empty one.
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()


def test_settings_defaults_from_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", GOOD_SECRET)
    settings = load_settings()
    assert settings.livekit_url == "ws://127.0.0.1:7880"
    assert settings.agent_name == "avatar-agent"
    assert (settings.token_server_host, settings.token_server_port) == ("127.0.0.1", 8080)
    assert settings.token_ttl_seconds == 900
    assert settings.cors_origins == ["http://127.0.0.1:5173", "http://localhost:5173"]
    assert settings.rate_limit_per_minute == 30
    assert settings.trust_proxy_headers is False
    assert settings.token_server_api_key is None
    assert settings.effective_room_prefix == "avatar"
    assert isinstance(settings.livekit_api_secret, SecretStr)


def test_settings_read_every_env_name(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "LIVEKIT_URL": "wss://lk.example.test",
        "LIVEKIT_API_KEY": "key1",
        "LIVEKIT_API_SECRET": GOOD_SECRET,
        "AGENT_NAME": "other-agent",
        "TOKEN_SERVER_HOST": "0.0.0.0",
        "TOKEN_SERVER_PORT": "9000",
        "ROOM_PREFIX": "demo",
        "VITE_ROOM_PREFIX": "ignored",
        "TOKEN_TTL_SECONDS": "120",
        "CORS_ORIGINS": "https://a.example, https://b.example/",
        "RATE_LIMIT_PER_MINUTE": "5",
        "TRUST_PROXY_HEADERS": "true",
        "TOKEN_SERVER_API_KEY": "shared",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.livekit_url == "wss://lk.example.test"
    assert s.livekit_api_key == "key1"
    assert s.agent_name == "other-agent"
    assert (s.token_server_host, s.token_server_port) == ("0.0.0.0", 9000)
    assert s.effective_room_prefix == "demo"
    assert s.token_ttl_seconds == 120
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.rate_limit_per_minute == 5
    assert s.trust_proxy_headers is True
    assert s.token_server_api_key is not None
    assert s.token_server_api_key.get_secret_value() == "shared"


def test_settings_room_prefix_falls_back_to_vite_then_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "k")
    monkeypatch.setenv("LIVEKIT_API_SECRET", GOOD_SECRET)
    monkeypatch.setenv("ROOM_PREFIX", "")  # blank, as in a copied .env.example
    monkeypatch.setenv("VITE_ROOM_PREFIX", "vite")
    assert load_settings().effective_room_prefix == "vite"
    monkeypatch.setenv("VITE_ROOM_PREFIX", "")
    assert load_settings().effective_room_prefix == "avatar"


def test_settings_read_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"LIVEKIT_API_KEY=fromfile\nLIVEKIT_API_SECRET={GOOD_SECRET}\n")
    assert get_settings().livekit_api_key == "fromfile"
    assert get_settings() is get_settings()


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({}, "LIVEKIT_API_KEY: is missing"),
        ({"LIVEKIT_API_KEY": "k"}, "LIVEKIT_API_SECRET: is missing"),
        ({"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": ""}, "LIVEKIT_API_SECRET: is missing"),
        (
            {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "short-secret-value"},
            "LIVEKIT_API_SECRET: must be at least 32 characters",
        ),
        (
            {"LIVEKIT_API_KEY": "xxx", "LIVEKIT_API_SECRET": GOOD_SECRET},
            "LIVEKIT_API_KEY: is a documentation placeholder",
        ),
        (
            {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": GOOD_SECRET, "ROOM_PREFIX": "a b"},
            "ROOM_PREFIX",
        ),
        (
            {"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": GOOD_SECRET, "TOKEN_TTL_SECONDS": "5"},
            "TOKEN_TTL_SECONDS",
        ),
    ],
)
def test_settings_refuse_unusable_env(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], needle: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert needle in str(info.value)
    assert "short-secret-value" not in str(info.value)


def test_settings_secret_never_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "k")
    monkeypatch.setenv("LIVEKIT_API_SECRET", GOOD_SECRET)
    monkeypatch.setenv("TOKEN_SERVER_API_KEY", "shared-key-value")
    text = repr(load_settings()) + str(load_settings().model_dump())
    assert GOOD_SECRET not in text
    assert "shared-key-value" not in text


def test_main_refuses_to_start_with_clear_message(tmp_path: Path) -> None:
    proc = run_module(
        "token_server",
        cwd=tmp_path,
        base={"PATH": "/usr/bin:/bin"},
        env={"LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "too-short-secret"},
    )
    assert proc.returncode != 0
    assert "LIVEKIT_API_SECRET: must be at least 32 characters" in proc.stderr
    assert "too-short-secret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr

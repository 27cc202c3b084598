from __future__ import annotations

import pytest

from agent.settings import Settings, SettingsError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LOG_LEVEL", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)


def _settings(**values: object) -> Settings:
    return load_settings(_env_file=None, **values)


def test_no_key_and_no_base_url_is_a_missing_provider_naming_both_variables() -> None:
    problem = _settings().missing_provider()
    assert problem is not None
    assert "OPENAI_API_KEY" in problem
    assert "OPENAI_BASE_URL" in problem
    assert "\n" not in problem


def test_a_key_or_a_base_url_is_a_provider() -> None:
    assert _settings(openai_api_key="sk-x").missing_provider() is None
    assert _settings(openai_base_url="http://127.0.0.1:1/v1").missing_provider() is None


def test_a_key_means_openai_with_no_code_change() -> None:
    settings = _settings(openai_api_key="sk-secret-value")
    assert settings.provider_base_url is None
    assert settings.provider_api_key == "sk-secret-value"
    assert "sk-secret-value" not in settings.describe_providers()
    assert "sk-secret-value" not in repr(settings)


def test_a_base_url_without_key_is_used_with_a_dummy_key() -> None:
    settings = _settings(openai_base_url="http://127.0.0.1:9999/v1")
    assert settings.provider_base_url == "http://127.0.0.1:9999/v1"
    assert settings.provider_api_key


def test_env_names_match_env_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_IDLE_TIMEOUT_SECONDS", "7")
    monkeypatch.setenv("AGENT_USER_REJOIN_GRACE_SECONDS", "3")
    monkeypatch.setenv("AGENT_HTTP_PORT", "18081")
    monkeypatch.setenv("AGENT_NUM_IDLE_PROCESSES", "0")
    monkeypatch.setenv("AGENT_JOB_EXECUTOR", "thread")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = _settings()
    assert settings.agent_idle_timeout_seconds == 7
    assert settings.agent_user_rejoin_grace_seconds == 3
    assert settings.agent_http_port == 18081
    assert settings.agent_num_idle_processes == 0
    assert settings.agent_job_executor == "thread"
    assert settings.log_format == "json"
    assert settings.log_level == "DEBUG"


def test_bad_values_name_the_variable_not_the_value() -> None:
    with pytest.raises(SettingsError, match="AGENT_IDLE_TIMEOUT_SECONDS"):
        _settings(agent_idle_timeout_seconds=-1)


def test_streaming_recognition_is_the_default_with_a_realtime_model() -> None:
    settings = _settings()
    assert settings.stt_realtime
    assert settings.resolved_stt_model == "gpt-realtime-whisper"


def test_upload_path_is_a_setting_with_its_own_default_model() -> None:
    settings = _settings(stt_realtime=False)
    assert settings.resolved_stt_model == "gpt-4o-mini-transcribe"
    assert _settings(stt_realtime=False, stt_model="whisper-1").resolved_stt_model == "whisper-1"


def test_a_realtime_only_model_on_the_upload_path_is_refused() -> None:
    with pytest.raises(SettingsError, match="realtime"):
        _settings(stt_realtime=False, stt_model="gpt-realtime-whisper")


def test_endpointing_max_below_min_is_refused() -> None:
    with pytest.raises(SettingsError, match="AGENT_ENDPOINTING_MAX_DELAY_SECONDS"):
        _settings(agent_endpointing_min_delay_seconds=1.0, agent_endpointing_max_delay_seconds=0.5)
    settings = _settings(agent_turn_detector="vad")
    assert settings.agent_turn_detector == "vad"


def test_end_of_turn_settings_reach_the_session_options() -> None:
    from agent.pipeline import build_turn_detector, endpointing_options

    settings = _settings(
        agent_turn_detector="vad",
        agent_endpointing_min_delay_seconds=0.7,
        agent_endpointing_max_delay_seconds=2.0,
    )
    assert build_turn_detector(settings) == "vad"
    assert endpointing_options(settings) == {"mode": "fixed", "min_delay": 0.7, "max_delay": 2.0}
    assert build_turn_detector(_settings(agent_turn_detector="model")) != "vad"

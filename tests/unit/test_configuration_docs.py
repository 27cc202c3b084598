"""Every variable the code reads is in .env.example, and every one there is in the README table.

"The code" is the three settings classes, the dev launcher, and the playground's `VITE_*`
build-time variables (read from its TypeScript sources).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from agent.settings import Settings as AgentSettings
from standin.settings import Settings as StandinSettings
from token_server.settings import Settings as TokenServerSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# Read outside pydantic-settings by the dev launcher.
LAUNCHER_VARIABLES = {"PLAYGROUND_PORT"}


def _example_variables() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def _readme_variables() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", table))


def _settings_variables(settings: type[BaseSettings]) -> set[str]:
    prefix = str(settings.model_config.get("env_prefix", ""))
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else (prefix + name).upper())
    return names


@pytest.mark.parametrize("settings", [AgentSettings, TokenServerSettings, StandinSettings])
def test_every_setting_is_in_env_example(settings: type[BaseSettings]) -> None:
    assert _settings_variables(settings) - _example_variables() == set()


def _playground_variables() -> set[str]:
    sources = (ROOT / "playground" / "src").rglob("*.ts")
    text = "\n".join(path.read_text() for path in sources)
    return set(re.findall(r"import\.meta\.env\.(VITE_[A-Z0-9_]+)", text))


def test_every_env_example_variable_is_in_the_readme_table() -> None:
    assert _example_variables() - _readme_variables() == set()
    assert _example_variables() >= LAUNCHER_VARIABLES


def test_every_playground_variable_is_in_env_example_and_the_readme_table() -> None:
    read = _playground_variables()
    assert {"VITE_LIVEKIT_URL", "VITE_TOKEN_URL", "VITE_ROOM_PREFIX"} <= read  # the scan works
    assert read - _example_variables() == set()
    assert read - _readme_variables() == set()

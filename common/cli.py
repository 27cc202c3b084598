"""`--help` for the services that are configured only by environment variables.

`python -m standin`, `python -m token_server` and `python -m devstack` take no options; their
help says what they do and lists every variable they read with its default, taken from the
settings class itself so it cannot drift from the code.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence

from pydantic import BaseModel, SecretStr

__all__ = ["parse_service_args", "settings_variables"]


def _env_name(settings: type[BaseModel], name: str) -> str:
    field = settings.model_fields[name]
    if isinstance(field.validation_alias, str):
        return field.validation_alias.upper()
    prefix = str(settings.model_config.get("env_prefix", ""))
    return (prefix + name).upper()


def _default(settings: type[BaseModel], name: str) -> str:
    field = settings.model_fields[name]
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "set"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def settings_variables(settings: type[BaseModel]) -> list[tuple[str, str]]:
    """(VARIABLE, default) for every field of a settings class, in declaration order."""
    return [(_env_name(settings, name), _default(settings, name)) for name in settings.model_fields]


def parse_service_args(
    prog: str,
    description: str,
    settings: Sequence[type[BaseModel]] = (),
    *,
    notes: str = "",
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """Parse a service's (empty) command line: `--help` prints the usage and exits 0, and any
    argument is refused with the usage rather than ignored."""
    rows = [row for cls in settings for row in settings_variables(cls)]
    width = max((len(name) for name, _ in rows), default=0)
    lines = [f"  {name.ljust(width)}  {default}" for name, default in rows]
    epilog = ""
    if lines:
        epilog = "environment variables (also read from ./.env; see .env.example):\n" + "\n".join(
            lines
        )
    if notes:
        epilog = f"{epilog}\n\n{notes}" if epilog else notes
    parser = argparse.ArgumentParser(
        prog=prog,
        description=textwrap.fill(description, width=79),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)

"""Token server: LiveKit join tokens that also dispatch our agent (`python -m token_server`)."""

from __future__ import annotations

from .app import create_app
from .settings import Settings, SettingsError, get_settings, load_settings

__all__ = ["Settings", "SettingsError", "create_app", "get_settings", "load_settings"]

"""agentwatch: an OpenTelemetry backend for AI agents in production."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentwatch._serve import Agentwatch, Endpoints, serve
    from agentwatch.settings import ConfigError, Settings, load_settings

__all__ = ["Agentwatch", "ConfigError", "Endpoints", "Settings", "load_settings", "serve"]


def __getattr__(name: str) -> object:
    """The server (detectors, scikit-learn, chDB) and the settings (pydantic-settings)
    load only when asked for: the CLI's API commands start in a fraction of a second."""
    if name in ("Agentwatch", "Endpoints", "serve"):
        from agentwatch import _serve

        return getattr(_serve, name)
    if name in ("ConfigError", "Settings", "load_settings"):
        from agentwatch import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

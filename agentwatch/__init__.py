"""agentwatch: an OpenTelemetry backend for AI agents in production."""

from agentwatch._serve import Agentwatch, Endpoints, serve
from agentwatch.settings import ConfigError, Settings, load_settings

__all__ = ["Agentwatch", "ConfigError", "Endpoints", "Settings", "load_settings", "serve"]

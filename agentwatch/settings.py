"""All of agentwatch's settings: one pydantic-settings model, `AGENTWATCH_` variables.

Built in `main()` (command-line flags override the environment) and passed down;
nothing reads the environment anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agentwatch._addresses import is_loopback, split_host_port


class ConfigError(Exception):
    """A setting is wrong; the message is one line naming it."""


def parse_token_map(value: Any) -> dict[str, str]:
    """`token=tenant,token2=tenant2` -> {token: tenant}."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if value is None or not str(value).strip():
        return {}
    tokens: dict[str, str] = {}
    for entry in str(value).split(","):
        token, sep, tenant = entry.strip().partition("=")
        if not sep or not token.strip() or not tenant.strip():
            raise ValueError("expected token=tenant[,token2=tenant2]")
        tokens[token.strip()] = tenant.strip()
    return tokens


TokenMap = Annotated[dict[str, str], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTWATCH_", extra="forbid")

    data_dir: Path = Path(".agentwatch")
    otlp_grpc: str = "127.0.0.1:4317"
    otlp_http: str = "127.0.0.1:4318"
    api: str = "127.0.0.1:8000"
    clickhouse_url: str | None = None
    # The API's reads, as a read-only ClickHouse user (server mode; see the README).
    clickhouse_query_url: str | None = None
    clickhouse_database: str = Field(default="agentwatch", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    config: Path | None = None
    # Agents' job descriptions: a YAML file or a directory of them (re-read on change).
    agents: Path | None = None
    ingest_tokens: TokenMap = Field(default_factory=dict)
    api_tokens: TokenMap = Field(default_factory=dict)
    retention_days: int = Field(default=30, ge=1, le=36500)
    max_request_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # A log segment is sealed and inserted at this many spans or this age, whichever first.
    batch_max_spans: int = Field(default=50_000, ge=1)
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    wal_max_bytes: int = Field(default=2 * 1024**3, ge=1024 * 1024)
    max_pending_bytes: int = Field(default=256 * 1024**2, ge=1024 * 1024)
    # On SIGTERM with the store down: how long to keep retrying before leaving the
    # unstored log segments for the next start.
    drain_timeout_s: float = Field(default=30.0, ge=0)
    log_level: str = "info"

    @field_validator("ingest_tokens", "api_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: Any) -> dict[str, str]:
        return parse_token_map(value)

    @field_validator("otlp_grpc", "otlp_http", "api")
    @classmethod
    def _check_address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://", "chdb://")):
            raise ValueError("must start with http://, https:// or chdb://")
        return value or None

    @field_validator("clickhouse_query_url")
    @classmethod
    def _check_query_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (a ClickHouse server)")
        return value or None

    @model_validator(mode="after")
    def _query_url_needs_a_server(self) -> Settings:
        if self.clickhouse_query_url and not (
            self.clickhouse_url and self.clickhouse_url.startswith(("http://", "https://"))
        ):
            raise ValueError(
                "AGENTWATCH_CLICKHOUSE_QUERY_URL is set but AGENTWATCH_CLICKHOUSE_URL is not a "
                "ClickHouse server (the embedded store has no users)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_open_public_binding(self) -> Settings:
        for name, tokens in (
            ("otlp_grpc", self.ingest_tokens),
            ("otlp_http", self.ingest_tokens),
            ("api", self.api_tokens),
        ):
            host, _ = split_host_port(getattr(self, name))
            if not tokens and not is_loopback(host):
                variable = "INGEST" if name != "api" else "API"
                raise ValueError(
                    f"{name}={getattr(self, name)} is not loopback and "
                    f"AGENTWATCH_{variable}_TOKENS is not set; refusing to serve without "
                    "authentication"
                )
        return self


def load_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Environment, then flags; any problem becomes a one-line ConfigError."""
    try:
        return Settings(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if location == "settings":
            raise ConfigError(f"invalid configuration: {message}") from None
        raise ConfigError(
            f"invalid setting {location} (AGENTWATCH_{location.upper()}): {message}"
        ) from None

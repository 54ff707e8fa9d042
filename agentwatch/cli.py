"""The `agentwatch` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from agentwatch._serve import serve
from agentwatch.settings import ConfigError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentwatch", description="OpenTelemetry backend for AI agents in production."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run receivers, pipeline and API")
    serve_cmd.add_argument("--data-dir", type=Path, help="default ./.agentwatch")
    serve_cmd.add_argument("--otlp-grpc", help="OTLP/gRPC host:port (default 127.0.0.1:4317)")
    serve_cmd.add_argument("--otlp-http", help="OTLP/HTTP host:port (default 127.0.0.1:4318)")
    serve_cmd.add_argument("--api", help="query API host:port (default 127.0.0.1:8000)")
    serve_cmd.add_argument("--clickhouse-url", help="ClickHouse server URL (default: chDB)")
    serve_cmd.add_argument("--config", type=Path, help="YAML file: detectors and alerts")
    serve_cmd.add_argument("--retention-days", type=int, help="span retention (default 30)")
    serve_cmd.add_argument("--log-level", help="debug, info, warning, error")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = load_settings(overrides)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"agentwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

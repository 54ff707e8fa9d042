"""The `agentwatch` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


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
    serve_cmd.add_argument(
        "--agents", type=Path, help="job descriptions: a YAML file or a directory of them"
    )
    serve_cmd.add_argument("--retention-days", type=int, help="span retention (default 30)")
    serve_cmd.add_argument("--log-level", help="debug, info, warning, error")
    alerts_cmd = commands.add_parser("alerts", help="alert routes")
    alerts_sub = alerts_cmd.add_subparsers(dest="alerts_command", required=True)
    test_cmd = alerts_sub.add_parser("test", help="send a test notification through a route")
    test_cmd.add_argument("--route", required=True, help="the route's name (route-<n> if unnamed)")
    test_cmd.add_argument("--config", type=Path, help="YAML file (default: AGENTWATCH_CONFIG)")
    from agentwatch import _evalset

    _evalset.add_arguments(
        commands.add_parser(
            "export-evalset", help="flagged runs as JSONL evaluation cases (reads the query API)"
        )
    )
    from agentwatch import _commands

    _commands.add_agents_arguments(
        commands.add_parser("agents", help="agents seen: runs, success rate, tokens, findings")
    )
    _commands.add_findings_arguments(
        commands.add_parser("findings", help="detector findings, newest first")
    )
    _commands.add_trace_arguments(
        commands.add_parser("trace", help="one trace as a tree: spans, events, scores")
    )
    from agentwatch import _demo

    _demo.add_arguments(
        commands.add_parser(
            "demo", help="a simulated agent fleet with injected incidents, detected live"
        )
    )
    return parser


def alerts_test(config_path: Path | None, route: str) -> int:
    """Send a test notification to each receiver of `route`; print what each answered."""
    import asyncio

    from agentwatch._config_file import load_config_file
    from agentwatch.settings import ConfigError, load_settings
    from api.alerts import AlertConfigError, AlertsConfig
    from api.alerts._delivery import send_test

    path = config_path or load_settings({}).config
    if path is None:
        raise ConfigError("alerts test: no config file (--config or AGENTWATCH_CONFIG)")
    try:
        config = AlertsConfig.from_dict(load_config_file(path).get("alerts"))
    except AlertConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    names = [r.name for r in config.routes]
    if route not in names:
        raise ConfigError(f"alerts test: no route {route!r} (routes: {', '.join(names) or 'none'})")
    failed = 0
    for receiver, outcome in asyncio.run(send_test(config, route)):
        if outcome.sent:
            print(f"{receiver.name} ({receiver.kind}): sent, HTTP {outcome.status_code}")
        else:
            failed += 1
            print(f"{receiver.name} ({receiver.kind}): FAILED, {outcome.error}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export-evalset":
        from agentwatch import _evalset

        return _evalset.run(args)
    if args.command in ("agents", "findings", "trace"):
        from agentwatch import _commands

        return _commands.run(args)
    if args.command == "demo":
        from agentwatch import _demo

        return _demo.run(args)
    # The settings (pydantic-settings, ~0.3 s of imports): only for the commands using them.
    from agentwatch.settings import ConfigError, load_settings

    if args.command == "alerts":
        try:
            return alerts_test(args.config, args.route)
        except ConfigError as exc:
            print(f"agentwatch: {exc}", file=sys.stderr)
            return 2
    overrides = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = load_settings(overrides)
        logging.basicConfig(
            level=settings.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        import asyncio

        from agentwatch._serve import serve  # the server's imports: only to serve

        asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"agentwatch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

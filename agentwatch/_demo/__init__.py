"""`agentwatch demo`: a simulated fleet of agents, real incidents, live detection.

Starts agentwatch in this process (embedded chDB, free loopback ports, thresholds
compressed so that every detector fires within about a minute) — or uses a running
one (`--target`) — then runs four simulated agents exporting OTLP/gRPC with the real
OpenTelemetry SDK and agentwatch_sdk, injects incidents on a timeline (a zombie run,
a runaway loop, a tool outage, a model swap with quality decay, a scope violation),
and shows the findings as the query API reports them. Exit status 0 when every
incident was detected and nothing fired falsely, 1 otherwise, 2 bad arguments or an
unreachable `--target`.

Modules: `_agents` (the fleet on paper), `_fleet` (agents at work), `_timeline`
(incidents and matching), `_config` (demo thresholds), `_alerts` (the console
receiver), `_server` (embedded agentwatch, findings poller), `_view` (terminal),
`_summary`, `_run` (orchestration). Only `add_arguments` and `run` are imported by
the CLI; the rest loads when the demo runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=90.0, help="the timeline's length in seconds (90)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the fleet (1)")
    parser.add_argument("--no-ui", action="store_true", help="plain log lines (for CI)")
    parser.add_argument(
        "--target",
        metavar="URL",
        help="a running agentwatch's query API (e.g. http://127.0.0.1:8000) instead of "
        "starting one; its thresholds apply",
    )
    parser.add_argument(
        "--otlp", metavar="HOST:PORT", help="with --target: OTLP/gRPC (default <target host>:4317)"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="the demo agentwatch's data dir (default: a temp dir)"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep serving after the timeline, until Ctrl-C"
    )


def run(args: argparse.Namespace) -> int:
    try:
        import agentwatch_sdk  # noqa: F401  (the simulated agents use it, as real ones would)
    except ImportError:
        print(
            "agentwatch demo: needs agentwatch_sdk: pip install './sdk[processor]' "
            "(`make demo` installs it)",
            file=sys.stderr,
        )
        return 2
    from agentwatch._demo._run import main

    return main(args)

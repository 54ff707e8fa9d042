"""Build agentwatch's Grafana dashboards (`grafana/dashboards/*.json`).

    python -m grafana.build_dashboards           # rewrite the JSON files
    python -m grafana.build_dashboards --check   # exit 1 if a committed file differs

Four dashboards (`_dashboards.py`), all on the agentwatch query API through the
Infinity datasource (uid `agentwatch-api`), trace ids linking to the ClickHouse
datasource's trace view (uid `agentwatch-clickhouse`), detector findings as
annotations: Fleet, Agent (`$agent`), Tools and Findings.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana._dashboards import agent, findings, fleet, tools
from grafana._panels import Json

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
DASHBOARDS: dict[str, Callable[[], Json]] = {
    "agentwatch-fleet.json": fleet,
    "agentwatch-agent.json": agent,
    "agentwatch-tools.json": tools,
    "agentwatch-findings.json": findings,
}


def render_all() -> dict[str, str]:
    """File name -> the dashboard's JSON text, exactly as committed."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = DASHBOARD_DIR / name
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            DASHBOARD_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run: python -m grafana.build_dashboards")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

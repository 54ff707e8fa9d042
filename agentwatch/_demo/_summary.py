"""The end of the demo: what was detected, how fast, what fired falsely, where to look."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agentwatch._demo._timeline import Incident, Timeline

Finding = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    incidents: list[Incident]
    false_findings: list[Finding]
    started_wall: float

    @property
    def detected(self) -> int:
        return sum(1 for i in self.incidents if i.finding is not None)

    @property
    def ok(self) -> bool:
        return self.detected == len(self.incidents) and not self.false_findings

    def result_line(self) -> str:
        total = len(self.incidents)
        found = f"all {total} incidents" if self.detected == total else f"{self.detected}/{total}"
        falses = len(self.false_findings)
        false_text = "no false findings" if not falses else f"{falses} false finding(s)"
        return f"result: {found} detected, {false_text}"


def outcome(timeline: Timeline, findings: list[Finding], started_wall: float) -> Outcome:
    """The verdict over every finding read: each is an incident's, or false."""
    now = time.time()
    ordered = sorted(findings, key=lambda f: str(f["opened_at"]))
    false = [f for f in ordered if timeline.match(f, now) is None]
    return Outcome(timeline.incidents, false, started_wall)


def _row(incident: Incident, started_wall: float) -> list[str]:
    injected = f"{incident.injected_at - started_wall:.1f} s" if incident.injected_at else "never"
    if incident.finding is None:
        return [incident.name, incident.agent, injected, "NO", "-", "-", "-"]
    after, seen = incident.detected_after_s, incident.seen_after_s
    return [
        incident.name,
        incident.agent,
        injected,
        "yes",
        f"{after:.1f} s" if after is not None else "-",
        f"{seen:.1f} s" if seen is not None else "-",
        f"{incident.finding['kind']} {incident.finding['id'][:12]}",
    ]


HEADERS = ["incident", "agent", "injected at", "detected", "after", "seen in API", "finding"]


def print_summary(result: Outcome, console: Console | None, own: bool = True) -> None:
    """A table on a terminal; aligned plain text otherwise (CI logs, `--no-ui`)."""
    rows = [_row(i, result.started_wall) for i in result.incidents]
    if console is not None:
        table = Table(title="summary: injected incidents", title_justify="left")
        for header in HEADERS:
            table.add_column(header)
        for row in rows:
            style = "green" if row[3] == "yes" else "bold red"
            table.add_row(*row[:3], Text(row[3], style=style), *row[4:])
        console.print(table)
    else:
        widths = [max(len(h), *(len(r[n]) for r in rows)) for n, h in enumerate(HEADERS)]
        print("summary: injected incidents")
        for row in [HEADERS, *rows]:
            print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print("  'after': from the injection to the finding's opened_at; 'seen': to the API poll")
    if result.false_findings:
        print("false findings (on healthy agents, or not caused by any incident):")
        for finding in result.false_findings:
            agent = finding["agent_name"] or "(all agents)"
            print(f"  {finding['kind']} {agent} {finding['tool_name']}: {finding['summary']}")
    else:
        print("false findings: none (faq-agent ran healthy throughout, as did each agent")
        print("  outside its incidents)")
    if not own and result.detected < len(result.incidents):
        print(
            "  on a running agentwatch an incident goes undetected when its thresholds are\n"
            "  longer than the demo (zombie_run waits min_idle, 2 min by default), without\n"
            "  job descriptions (scope violation), or when an earlier demo's finding is still\n"
            "  open (a model swap's change point settles after 1 h)"
        )
    print(result.result_line(), flush=True)


def print_next_steps(
    api: str, own: bool, keep: bool, timeline: Timeline, cli_commands: set[str]
) -> None:
    """The exact commands to look further, with the live addresses."""
    loop, zombie = timeline.loop, timeline.zombie
    lines = [
        f"curl -s {api}/api/v1/findings | python3 -m json.tool",
        f'curl -s "{api}/api/v1/agents/billing-agent?since=1h"',
        f'curl -s "{api}/api/v1/tools?agent=research-agent&since=1h"',
        f'curl -s "{api}/api/v1/timeseries/tool_failure_rate?by=tool&since=10m&step=10s"',
    ]
    if zombie.finding is not None:
        lines.append(f"curl -s {api}/api/v1/findings/{zombie.finding['id']}")
    if loop.trace_id:
        lines.append(f"curl -s {api}/api/v1/traces/{loop.trace_id}")
    if own:
        lines.append(f"curl -s {api}/api/v1/alerts")
    if "findings" in cli_commands:
        lines.append(f"agentwatch findings --api {api}")
    if "trace" in cli_commands and loop.trace_id:
        lines.append(f"agentwatch trace {loop.trace_id} --api {api}")
    if loop.finding is not None:
        lines.append(
            f"agentwatch export-evalset --api {api} --finding {loop.finding['id']} --out loop.jsonl"
        )
    lines.append(f"open {api}/docs")
    if keep:
        lines.append(
            "curl -X POST -H 'content-type: application/json' -d '{\"reason\": \"demo\"}' "
            f"{api}/api/v1/agents/support-agent/pause   # kill switch; /resume to go on"
        )
    where = f"the API at {api}"
    if own and not keep:
        where += " (this agentwatch stops with the demo: run with --keep to keep it)"
    print(f"\nlook further, {where}:")
    for line in lines:
        print(f"  {line}")
    print(
        "Grafana (Fleet, Agent, Tools, Findings dashboards): `docker compose up -d`, then\n"
        "  AGENTWATCH_API_TOKEN=dev-api-token "
        'OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20dev-ingest-token" \\\n'
        "    agentwatch demo --target http://localhost:8000\n"
        "  and open http://localhost:3000 (admin / admin)",
        flush=True,
    )


def cli_commands() -> set[str]:
    """The `agentwatch` subcommands this build has (to print only what exists)."""
    from agentwatch.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()

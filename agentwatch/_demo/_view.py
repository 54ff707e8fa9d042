"""What the demo shows while it runs: a live terminal dashboard, or plain log lines.

Both read the same `Board`. `RichView` redraws a `rich.live.Live` four times a
second (the timeline's progress, the fleet, each incident and whether it has been
detected, the findings as they open and resolve) and prints events — injections,
findings, alerts — above it; `PlainView` prints the events and a status line every
ten seconds, for CI logs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from agentwatch._demo._fleet import Agent, Fleet
from agentwatch._demo._timeline import Incident, Timeline

Finding = dict[str, Any]


@dataclass
class Board:
    """Everything the views show, kept up to date by the demo."""

    header: str
    duration_s: float
    fleet: Fleet
    timeline: Timeline
    findings: Callable[[], list[Finding]]
    started: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    labels: dict[str, str] = field(default_factory=dict)  # finding id -> incident, or FALSE
    alerts: Callable[[], int] = lambda: 0  # how many reached the console receiver
    note: str = ""  # e.g. "waiting for detection", or an API problem

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def at(self, wall: float) -> float:
        """A wall-clock time as seconds into the demo."""
        return wall - self.started_wall


class View(Protocol):
    def __enter__(self) -> View: ...
    def __exit__(self, *exc: object) -> None: ...
    def event(self, text: str, style: str = "") -> None: ...
    def status(self) -> None: ...


class PlainView:
    """Log lines: events as they happen, the fleet's state every `every_s`."""

    def __init__(self, board: Board, every_s: float = 10.0) -> None:
        self._board = board
        self._every_s = every_s
        self._last = 0.0
        self._lock = threading.Lock()

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def event(self, text: str, style: str = "") -> None:
        with self._lock:
            print(f"[{self._board.elapsed_s:6.1f}s] {text}", flush=True)

    def status(self) -> None:
        if self._board.elapsed_s - self._last < self._every_s:
            return
        self._last = self._board.elapsed_s
        parts = []
        for agent in self._board.fleet.agents.values():
            spans, _, failure, _ = agent.stats.rates()
            rate = f"{failure:.0%}" if failure is not None else "-"
            parts.append(f"{agent.spec.name} {spans:.0f} spans/s, tool failures {rate}")
        detected = sum(1 for i in self._board.timeline.incidents if i.finding is not None)
        total = len(self._board.timeline.incidents)
        self.event(f"fleet: {'; '.join(parts)} | detected {detected}/{total}")


class RichView:
    """The live dashboard; events scroll above it."""

    def __init__(self, board: Board, console: Console | None = None) -> None:
        self._board = board
        self.console = console or Console()
        self._live = Live(console=self.console, get_renderable=self._render, refresh_per_second=4)

    def __enter__(self) -> RichView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def event(self, text: str, style: str = "") -> None:
        line = Text.assemble((f"{self._board.elapsed_s:6.1f}s ", "dim"), (text, style))
        self.console.print(line)

    def status(self) -> None:
        pass  # the dashboard redraws itself

    def _render(self) -> RenderableType:
        board = self._board
        return Panel(
            Group(
                _progress(board),
                _agents(board),
                _incidents(board),
                _findings(board),
            ),
            title=board.header,
            title_align="left",
        )


def _progress(board: Board) -> RenderableType:
    grid = Table.grid(padding=(0, 1))
    done = min(board.elapsed_s, board.duration_s)
    detected = sum(1 for i in board.timeline.incidents if i.finding is not None)
    counts = f"detected {detected}/{len(board.timeline.incidents)}, alerts {board.alerts()}"
    grid.add_row(
        Text("timeline", style="bold"),
        ProgressBar(total=board.duration_s, completed=done, width=48),
        Text(f"{done:3.0f} / {board.duration_s:.0f} s  {counts}  {board.note}", style="dim"),
    )
    return grid


def agent_state(agent: Agent) -> tuple[str, str]:
    """What the dashboard says about an agent, and in which style."""
    faults = agent.faults
    if agent.stats.paused:
        return "paused (kill switch)", "magenta"
    states = []
    if any(not shot.release.is_set() for shot in faults.hung):
        states.append("1 run stuck")
    if faults.failure_rates:
        states.append("outage: " + ", ".join(faults.failure_rates))
    if faults.model is not None:
        states.append(f"now on {faults.model.request}")
    return ("; ".join(states), "yellow") if states else ("healthy", "green")


def _agents(board: Board) -> RenderableType:
    table = Table(title="fleet", title_justify="left", expand=True, box=None)
    for column in ("agent", "conv.", "runs", "spans/s", "tool calls 15s", "failed"):
        table.add_column(column, justify="left" if column == "agent" else "right")
    table.add_column("model")
    table.add_column("score", justify="right")
    table.add_column("state")
    for agent in board.fleet.agents.values():
        spans, calls, failure, score = agent.stats.rates()
        state, style = agent_state(agent)
        failed_style = "red" if failure is not None and failure >= 0.2 else ""
        table.add_row(
            agent.spec.name,
            str(agent.spec.workers),
            str(agent.stats.runs),
            f"{spans:.0f}",
            str(calls),
            Text(f"{failure:.0%}" if failure is not None else "-", style=failed_style),
            agent.model.request,
            f"{score:.2f}" if score is not None else "-",
            Text(state, style=style),
        )
    return table


def incident_status(incident: Incident, now: float) -> tuple[str, str]:
    if incident.injected_at is None:
        return "scheduled", "dim"
    after = incident.detected_after_s
    if after is not None:
        return f"detected after {after:.1f} s", "bold green"
    return f"injected {now - incident.injected_at:.0f} s ago, not detected yet", "yellow"


def _incidents(board: Board) -> RenderableType:
    table = Table(title="incidents", title_justify="left", expand=True, box=None)
    table.add_column("at", justify="right")
    table.add_column("incident")
    table.add_column("agent")
    table.add_column("what")
    table.add_column("detected")
    now = time.time()
    for incident in board.timeline.incidents:
        status, style = incident_status(incident, now)
        table.add_row(
            f"{incident.at_s:.0f}s",
            incident.name,
            incident.agent,
            Text(incident.what, overflow="ellipsis", no_wrap=True),
            Text(status, style=style),
        )
    return table


def _findings(board: Board) -> RenderableType:
    table = Table(title="findings (from /api/v1/findings)", title_justify="left", expand=True)
    for column in ("opened", "kind", "sev.", "agent", "tool", "state", "about", "summary"):
        table.add_column(column, no_wrap=column != "summary", overflow="ellipsis")
    findings = sorted(board.findings(), key=lambda f: str(f["opened_at"]), reverse=True)
    for finding in findings[:8]:
        label = board.labels.get(finding["id"], "")
        opened = board.at(datetime.fromisoformat(finding["opened_at"]).timestamp())
        table.add_row(
            f"{opened:.0f}s",
            finding["kind"],
            finding["severity"],
            finding["agent_name"] or "(all agents)",
            finding["tool_name"],
            Text(finding["state"], style="red" if finding["state"] == "open" else "green"),
            Text(label, style="bold red" if label == "FALSE" else ""),
            Text(finding["summary"], overflow="ellipsis", no_wrap=True),
        )
    if not findings:
        table.add_row("", Text("none yet", style="dim"), *[""] * 6)
    return table

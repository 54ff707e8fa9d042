"""`agentwatch demo` end to end: its own agentwatch, and a running one (`--target`).

The demo is a real subprocess: its simulated agents export OTLP/gRPC with the
OpenTelemetry SDK and agentwatch_sdk, and it reads the findings through the query
API. Its agents wait while they "work" (simulation); the tests only wait for it to end.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agentwatch._demo import _config
from agentwatch._demo._agents import FLEET
from agentwatch._demo._fleet import Fleet
from agentwatch._demo._summary import outcome
from agentwatch._demo._timeline import Timeline
from agentwatch.cli import main
from tests.harness import AgentwatchThread, make_settings

# The shortest timeline that detects everything reliably on the 2-core machine.
DURATION = "30"
INCIDENTS = [
    "zombie run",
    "runaway loop",
    "scope violation",
    "tool outage",
    "model swap",
    "quality decay",
]


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "agentwatch.cli", "demo", "--no-ui", "--duration", DURATION]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=180)


def summary_rows(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows by incident name (columns split on 2+ spaces)."""
    rows = {}
    for line in stdout.split("summary: injected incidents", 1)[1].splitlines():
        cells = [c for c in line.strip().split("  ") if c.strip()]
        for name in INCIDENTS:
            if line.strip().startswith(name):
                rows[name] = [c.strip() for c in cells]
    return rows


def assert_everything_detected(done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "result: all 6 incidents detected, no false findings" in done.stdout, output
    rows = summary_rows(done.stdout)
    assert set(rows) == set(INCIDENTS), output
    for name, cells in rows.items():
        assert cells[3] == "yes", (name, output)
    assert "false findings: none" in done.stdout
    assert "FALSE" not in done.stdout


def test_the_demo_detects_every_injected_incident_and_nothing_else(tmp_path: Path) -> None:
    done = demo("--data-dir", str(tmp_path / "data"))

    assert_everything_detected(done)
    assert "alert opened: zombie_run [error] billing-agent / ledger.get_invoice" in done.stdout
    assert "SIGNATURE DID NOT VERIFY" not in done.stdout
    assert "zombie_run.min_idle: 2m -> 4s" in done.stdout  # says what it changed
    assert (tmp_path / "data" / "demo-agents.yaml").exists()


def test_the_demo_against_a_running_agentwatch_with_its_thresholds(tmp_path: Path) -> None:
    config, agents = _config.write_config(tmp_path / "config", None)
    # Flushed as often as the demo's own agentwatch (each chDB insert costs CPU).
    settings = make_settings(tmp_path / "data", config=config, agents=agents, flush_interval_s=0.5)
    with AgentwatchThread(settings) as server:
        # --data-dir: where it writes its config files for the user (not a temp dir here).
        target = ("--target", server.endpoints.api, "--otlp", server.grpc_target)
        done = demo(*target, "--data-dir", str(tmp_path / "demo"))

    assert_everything_detected(done)
    assert "a running agentwatch keeps its own thresholds" in done.stdout
    assert (tmp_path / "demo" / "demo-config.yaml").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "5"], "--duration must be at least 30 s"),
        (["--otlp", "127.0.0.1:4317"], "--otlp goes with --target"),
        (["--target", "127.0.0.1:8000"], "--target must be the API's http(s) URL"),
    ],
)
def test_bad_arguments_exit_2_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--no-ui", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.strip().count("\n") == 0


def finding(kind: str, agent: str, tool: str = "", **extra: Any) -> dict[str, Any]:
    now = time.time()
    opened = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z"
    return {
        "id": f"{kind}-{agent}-{tool}",
        "kind": kind,
        "agent_name": agent,
        "tool_name": tool,
        "trace_id": "",
        "opened_at": opened,
        "evidence": {},
        **extra,
    }


def test_findings_are_matched_to_their_incidents_and_the_rest_are_false() -> None:
    timeline = Timeline(Fleet(FLEET, "127.0.0.1:1", seed=1), duration_s=60)
    timeline.outage.injected_at = time.time() - 10
    timeline.swap.injected_at = time.time() - 10
    spike = finding("tool_failure_spike", "research-agent", "web.search")
    across_agents = finding("tool_failure_spike", "", "web.search")
    swap = finding("change_point", "support-agent", evidence={"change": "model"})
    other_tool = finding("tool_failure_spike", "research-agent", "web.fetch")
    healthy = finding("zombie_run", "faq-agent")
    not_yet_injected = finding("runaway_loop", "research-agent", "web.fetch")

    result = outcome(
        timeline,
        [spike, across_agents, swap, other_tool, healthy, not_yet_injected],
        time.time() - 30,
    )

    assert timeline.outage.finding == spike
    assert timeline.outage.explained == [across_agents["id"]]
    assert timeline.swap.finding == swap
    assert [f["id"] for f in result.false_findings] == [
        other_tool["id"],
        healthy["id"],
        not_yet_injected["id"],
    ]
    assert result.detected == 2
    assert not result.ok

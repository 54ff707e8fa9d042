"""Alerts end to end: a real `agentwatch serve`, a real agent looping (OTel SDK), and
loopback servers answering as Slack, PagerDuty and a signature-checking webhook."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentwatch_sdk import configure

from api.alerts._formats import verify_webhook
from tests.alerts.receivers import Receiver
from tests.harness import AgentwatchProcess, http, wait_for
from tests.test_detectors_serve import Agent, finding_for, start

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    running = {
        "slack": Receiver("slack").start(),
        "pagerduty": Receiver("pagerduty").start(),
        "webhook": Receiver("webhook").start(),
    }
    yield running
    for receiver in running.values():
        receiver.stop()


def write_config(path: Path, receivers: dict[str, Receiver], allow_private: bool = True) -> Path:
    path.write_text(
        f"""
detectors:
  runaway_loop: {{max_repeats: 3}}
alerts:
  allow_private_targets: {str(allow_private).lower()}
  delivery: {{min_backoff: "0.1s", max_backoff: "1s"}}
  receivers:
    - name: team
      slack: {{webhook_url: "{receivers["slack"].url("/services/T0/B0/x")}"}}
    - name: oncall
      pagerduty: {{routing_key: "R0UT1NG", url: "{receivers["pagerduty"].url("/v2/enqueue")}"}}
    - name: audit
      webhook: {{url: "{receivers["webhook"].url("/hook")}", secret: "{SECRET}"}}
  routes:
    - name: loops
      match: {{kind: [runaway_loop]}}
      receivers: [team, oncall, audit]
      send_resolved: true
"""
    )
    return path


def loop_until_found(server: AgentwatchProcess, name: str) -> tuple[Agent, str]:
    """Run an agent that repeats one tool call until agentwatch reports the loop."""
    agent = Agent(server.endpoints["otlp_grpc"], name, f"{name}:1")
    configure(tracer_provider=agent.provider, heartbeat_interval_s=0.2)
    stop = threading.Event()
    loop = start(agent.run, "conv-loop", steps=40, step_s=0.05, same_arguments=True, stop=stop)
    trace_id = wait_for(lambda: agent.trace_ids[0] if agent.trace_ids else None)
    wait_for(finding_for(server, "runaway_loop", trace_id), timeout_s=60)
    stop.set()
    loop.join(30)
    agent.shutdown()
    return agent, trace_id


def alerts_api(server: AgentwatchProcess, **params: Any) -> list[dict[str, Any]]:
    response = http().get(f"{server.endpoints['api']}/api/v1/alerts", params=params, timeout=10)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["alerts"]
    return found


def _when_six(deliveries: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    return deliveries if len(deliveries) == 6 else None


def test_a_runaway_loop_pages_every_receiver_once_and_resolves_once(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = write_config(tmp_path / "agentwatch.yaml", receivers)
    server = AgentwatchProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        _, trace_id = loop_until_found(server, "loop-agent")
        wait_for(finding_for(server, "runaway_loop", trace_id, "resolved"), timeout_s=60)
        wait_for(lambda: all(len(r.received()) == 2 for r in receivers.values()), timeout_s=30)
        deliveries = wait_for(lambda: _when_six(alerts_api(server, status="sent")))
    finally:
        server.kill()

    trigger, resolve = (r.json() for r in receivers["pagerduty"].received())
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["payload"]["component"] == "loop-agent"
    for request in receivers["webhook"].received():
        assert verify_webhook(SECRET, request.headers, request.body, now_s=int(time.time()))
        assert request.json()["data"]["trace_id"] == trace_id
    assert {(d["receiver"], d["event"]) for d in deliveries} == {
        (receiver, event)
        for receiver in ("team", "oncall", "audit")
        for event in ("trigger", "resolve")
    }


def test_killed_with_undelivered_alerts_delivers_them_after_restart_and_nothing_twice(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = write_config(tmp_path / "agentwatch.yaml", receivers)
    receivers["pagerduty"].answer_next(*[(503, {}, b"maintenance")] * 10_000)
    server = AgentwatchProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        loop_until_found(server, "loop-agent")
        wait_for(lambda: len(receivers["slack"].received()) >= 1, timeout_s=30)
        wait_for(lambda: len(receivers["pagerduty"].received()) >= 2, timeout_s=30)  # retrying
    finally:
        server.kill()  # SIGKILL, PagerDuty's trigger still undelivered
    refused = len(receivers["pagerduty"].received())
    receivers["pagerduty"].script.clear()  # PagerDuty is back

    restarted = AgentwatchProcess(tmp_path / "data", "--config", str(config)).start()
    try:
        wait_for(lambda: len(receivers["pagerduty"].received()) > refused, timeout_s=30)
        wait_for(lambda: not alerts_api(restarted, status="pending"), timeout_s=30)
        sent = alerts_api(restarted, receiver="oncall", status="sent")
    finally:
        restarted.kill()

    after = [r.json()["event_action"] for r in receivers["pagerduty"].received()[refused:]]
    assert after[0] == "trigger"  # the undelivered trigger, once PagerDuty was back
    assert after.count("trigger") == 1
    assert [d["event"] for d in sent][-1] == "trigger" or "resolve" in after
    slack = [r.body for r in receivers["slack"].received()]
    assert len(slack) == len(set(slack))  # nothing Slack had is sent again
    assert len(slack) <= 2  # the trigger, and at most the resolve


def test_a_private_webhook_target_is_refused_at_start_in_one_line(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = write_config(tmp_path / "agentwatch.yaml", receivers, allow_private=False)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentwatch.cli",
            "serve",
            "--data-dir",
            str(tmp_path / "d"),
            "--config",
            str(config),
            "--api",
            "127.0.0.1:0",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )

    assert result.returncode == 2
    assert "alerts.receivers.0 (team)" in result.stderr
    assert "127.0.0.1" in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert not any(r.received() for r in receivers.values())


def test_alerts_test_sends_one_test_notification_per_receiver_of_the_route(
    tmp_path: Path, receivers: dict[str, Receiver]
) -> None:
    config = write_config(tmp_path / "agentwatch.yaml", receivers)
    receivers["webhook"].answer_next((400, {}, b"bad signature"))

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentwatch.cli",
            "alerts",
            "test",
            "--route",
            "loops",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1, result.stderr  # one receiver refused it
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "team (slack): sent, HTTP 200"
    assert lines[1] == "oncall (pagerduty): sent, HTTP 202"
    assert lines[2].startswith("audit (webhook): FAILED, HTTP 400: bad signature")
    assert receivers["pagerduty"].received()[0].json()["payload"]["summary"].startswith("[test]")
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentwatch.cli",
            "alerts",
            "test",
            "--route",
            "nope",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert "no route 'nope' (routes: loops)" in missing.stderr

"""The outbox and notification log: what each finding version enqueues, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.alerts._outbox import Outbox, Planned
from detectors import Finding

T0 = 1_700_000_000.0


def finding(state: str = "open", severity: str = "error", version: int = 1) -> Finding:
    return Finding(
        id="f" * 32,
        kind="tool_failure_spike",
        tenant="acme",
        severity=severity,
        summary="crm.lookup failing",
        opened_at_ns=int(T0 * 1e9),
        updated_at_ns=int(T0 * 1e9),
        agent_name="support-agent",
        tool_name="crm.lookup",
        resolved_at_ns=int((T0 + 60) * 1e9) if state == "resolved" else 0,
        version=version,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "alerts.db")


PAGE = [Planned("oncall", "pages", send_resolved=True), Planned("team", "pages", True)]


def events(outbox: Outbox, receiver: str) -> list[str]:
    return [n["event"] for n in reversed(outbox.deliveries(receiver=receiver))]


def test_an_opened_finding_is_one_trigger_per_receiver_and_a_replay_adds_none(
    outbox: Outbox,
) -> None:
    assert outbox.record(finding(), PAGE, now=T0) == 2
    assert outbox.record(finding(), PAGE, now=T0 + 1) == 0  # replayed after a restart
    assert outbox.record(finding(version=2), PAGE, now=T0 + 2) == 0  # merely updated

    assert events(outbox, "oncall") == ["trigger"]
    assert events(outbox, "team") == ["trigger"]


def test_a_resolve_follows_its_trigger_and_waits_for_it(outbox: Outbox) -> None:
    outbox.record(finding(), PAGE[:1], now=T0)
    outbox.record(finding("resolved", version=3), PAGE[:1], now=T0 + 1)

    assert events(outbox, "oncall") == ["trigger", "resolve"]
    (first,) = outbox.due("oncall", now=T0 + 5)
    assert first.event == "trigger"  # the resolve waits while the trigger is pending
    outbox.mark_sent(first.id, 202)
    (second,) = outbox.due("oncall", now=T0 + 5)
    assert second.event == "resolve"
    assert second.finding["resolved_at_ns"] > 0


def test_no_resolve_without_send_resolved_and_none_for_a_finding_never_announced(
    outbox: Outbox,
) -> None:
    quiet = [Planned("team", "chat", send_resolved=False)]
    outbox.record(finding(), quiet, now=T0)
    outbox.record(finding("resolved", version=2), quiet, now=T0 + 1)
    assert events(outbox, "team") == ["trigger"]

    outbox.record(finding("resolved", version=2), PAGE[:1], now=T0 + 2)  # never opened
    assert events(outbox, "oncall") == []


def test_an_escalation_triggers_again_and_a_reopened_finding_too(outbox: Outbox) -> None:
    outbox.record(finding(severity="warning"), PAGE[:1], now=T0)
    outbox.record(finding(severity="critical", version=2), PAGE[:1], now=T0 + 1)
    outbox.record(finding(severity="error", version=3), PAGE[:1], now=T0 + 2)  # calmer: no
    outbox.record(finding("resolved", version=4), PAGE[:1], now=T0 + 3)
    outbox.record(finding(version=5), PAGE[:1], now=T0 + 4)

    assert events(outbox, "oncall") == ["trigger", "trigger", "resolve", "trigger"]


def test_a_still_open_finding_repeats_after_its_route_interval(outbox: Outbox) -> None:
    outbox.record(finding(), PAGE, now=T0)

    assert outbox.due_repeats({"pages": 3600.0}, now=T0 + 3599) == 0
    assert outbox.due_repeats({"pages": 3600.0}, now=T0 + 3600) == 2
    assert outbox.due_repeats({"pages": 3600.0}, now=T0 + 3601) == 0  # counted from now
    assert events(outbox, "oncall") == ["trigger", "repeat"]
    outbox.record(finding("resolved", version=2), PAGE, now=T0 + 4000)
    assert outbox.due_repeats({"pages": 3600.0}, now=T0 + 99_999) == 0


def test_what_was_enqueued_survives_reopening_the_outbox(tmp_path: Path) -> None:
    first = Outbox(tmp_path / "alerts.db")
    first.record(finding(), PAGE, now=T0)
    (trigger,) = first.due("oncall", now=T0)
    first.mark_sent(trigger.id, 202)
    first.close()

    again = Outbox(tmp_path / "alerts.db")
    assert again.record(finding(), PAGE, now=T0 + 10) == 0
    assert [n.receiver for n in again.due("team", now=T0 + 10)] == ["team"]
    assert again.due("oncall", now=T0 + 10) == []
    sent = again.deliveries(receiver="oncall")
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in sent] == [("sent", 1, 202)]

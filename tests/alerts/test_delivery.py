"""Alert delivery against real HTTP servers on loopback acting as Slack, PagerDuty and
a webhook receiver that verifies signatures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from api.alerts import Alerter, AlertsConfig
from api.alerts._formats import verify_webhook
from detectors import Finding
from tests.alerts.receivers import Receiver

T = TypeVar("T")
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


def config(receivers: dict[str, Receiver], **route: Any) -> AlertsConfig:
    return AlertsConfig.from_dict(
        {
            "allow_private_targets": True,  # the receivers are on loopback
            "delivery": {"min_backoff": "0.05s", "max_backoff": "1s"},
            "receivers": [
                {"name": "team", "slack": {"webhook_url": receivers["slack"].url("/slack")}},
                {
                    "name": "oncall",
                    "pagerduty": {
                        "routing_key": "R0UT1NGKEY",
                        "url": receivers["pagerduty"].url("/v2/enqueue"),
                    },
                },
                {
                    "name": "audit",
                    "webhook": {"url": receivers["webhook"].url("/hook"), "secret": SECRET},
                },
            ],
            "routes": [{"receivers": ["team", "oncall", "audit"], **route}],
        }
    )


def finding(resolved: bool = False, version: int = 1, **fields: Any) -> Finding:
    now_ns = time.time_ns()
    values: dict[str, Any] = {
        "id": "ab" * 16,
        "kind": "tool_failure_spike",
        "tenant": "acme",
        "severity": "critical",
        "summary": "crm.lookup fails 41% of calls (baseline 5%)",
        "opened_at_ns": now_ns,
        "updated_at_ns": now_ns,
        "agent_name": "support-agent",
        "service_name": "support-api",
        "tool_name": "crm.lookup",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "evidence": {"failure_rate": 0.41, "baseline_rate": 0.05, "calls": 120},
        "resolved_at_ns": now_ns if resolved else 0,
        "version": version,
        **fields,
    }
    return Finding(**values)


async def until(condition: Callable[[], T | None], timeout_s: float = 20.0) -> T:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout_s}s (last value: {last!r})")


def run(body: Callable[[Alerter], Awaitable[None]], alerts: AlertsConfig, db: Path) -> None:
    async def main() -> None:
        alerter = Alerter(alerts, db)
        await alerter.start()
        try:
            await body(alerter)
        finally:
            await alerter.stop()

    asyncio.run(main())


def test_open_then_resolve_is_one_trigger_and_one_resolve_per_receiver(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    async def body(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        alerter.on_finding(finding(version=2))  # an update: nothing new to say
        await until(lambda: all(len(r.received()) == 1 for r in receivers.values()))
        alerter.on_finding(finding(resolved=True, version=3))
        await until(lambda: all(len(r.received()) == 2 for r in receivers.values()))
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(body, config(receivers), tmp_path / "alerts.db")

    trigger, resolve = (r.json() for r in receivers["pagerduty"].received())
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["routing_key"] == "R0UT1NGKEY"
    assert trigger["payload"]["severity"] == "critical"
    opened, closed = receivers["slack"].received()
    assert "crm.lookup" in opened.body.decode()
    assert "Resolved" in closed.body.decode()
    for request in receivers["webhook"].received():
        assert verify_webhook(SECRET, request.headers, request.body, now_s=int(time.time()))
    types = [r.json()["type"] for r in receivers["webhook"].received()]
    assert types == ["finding.opened", "finding.resolved"]


def test_a_receiver_down_for_a_while_gets_the_notification_once_when_back(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    down: tuple[int, dict[str, str], bytes] = (503, {}, b"upstream unavailable")
    receivers["pagerduty"].answer_next(down, down, down, (500, {}, b"oops"))

    async def body(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(body, config(receivers), tmp_path / "alerts.db")

    statuses = [r.json()["event_action"] for r in receivers["pagerduty"].received()]
    assert statuses == ["trigger"] * 5  # four refused, the fifth delivered
    assert len(receivers["slack"].received()) == 1  # the other receivers were not held up


def test_a_429_is_retried_no_sooner_than_its_retry_after(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    receivers["slack"].answer_next((429, {"retry-after": "1"}, b"rate_limited"))

    async def body(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        await until(lambda: len(receivers["slack"].received()) == 2)

    run(body, config(receivers), tmp_path / "alerts.db")

    first, second = receivers["slack"].received()
    assert second.at - first.at >= 1.0


def test_a_400_fails_at_once_with_the_receivers_answer(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    receivers["pagerduty"].answer_next(
        (400, {"content-type": "application/json"}, b'{"status":"invalid event"}')
    )
    outcome: list[dict[str, Any]] = []

    async def body(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        outcome.extend(
            await until(lambda: alerter.outbox.deliveries(receiver="oncall", status="failed"))
        )

    run(body, config(receivers), tmp_path / "alerts.db")

    assert len(receivers["pagerduty"].received()) == 1  # not retried
    (failed,) = outcome
    assert failed["last_status_code"] == 400
    assert "invalid event" in failed["last_error"]


def test_a_redirect_is_not_followed(receivers: dict[str, Receiver], tmp_path: Path) -> None:
    elsewhere = receivers["webhook"].url("/stolen")
    receivers["slack"].answer_next((302, {"location": elsewhere}, b""))
    outcome: list[dict[str, Any]] = []

    async def body(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        outcome.extend(
            await until(lambda: alerter.outbox.deliveries(receiver="team", status="failed"))
        )
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(body, config(receivers), tmp_path / "alerts.db")

    assert "not followed" in outcome[0]["last_error"]
    assert [r.path for r in receivers["webhook"].received()] == ["/hook"]  # never /stolen


def test_undelivered_notifications_go_out_after_a_restart_and_sent_ones_do_not(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    db = tmp_path / "alerts.db"
    receivers["slack"].answer_next(*[(503, {}, b"down")] * 1000)  # Slack is down throughout

    async def first_life(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        await until(lambda: len(receivers["pagerduty"].received()) == 1)
        await until(lambda: len(receivers["slack"].received()) >= 2)

    run(first_life, config(receivers), db)
    receivers["slack"].script.clear()  # Slack is back

    async def second_life(alerter: Alerter) -> None:
        alerter.on_finding(finding())  # the detectors re-derive it after the restart
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(second_life, config(receivers), db)

    assert len(receivers["pagerduty"].received()) == 1  # delivered before: not again
    slack = receivers["slack"].received()
    assert len(slack) >= 3
    assert all(r.body == slack[0].body for r in slack)  # one notification, retried


def test_a_finding_no_route_matches_goes_nowhere(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    only_zombies = config(receivers, match={"kind": "zombie_run", "severity": ["critical"]})

    async def body(alerter: Alerter) -> None:
        alerter.on_finding(finding())
        alerter.on_finding(finding(id="cd" * 16, kind="zombie_run", severity="error"))
        alerter.on_finding(finding(id="ef" * 16, kind="zombie_run"))
        await until(lambda: len(receivers["pagerduty"].received()) == 1)
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(body, only_zombies, tmp_path / "alerts.db")

    (page,) = receivers["pagerduty"].received()
    assert page.json()["dedup_key"].endswith("ef" * 16)


def test_findings_of_one_agent_close_together_are_one_slack_message(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    grouped = config(receivers, group_wait="1s")
    ids = ["a1" * 16, "b2" * 16, "c3" * 16]

    async def body(alerter: Alerter) -> None:
        for n, finding_id in enumerate(ids):
            alerter.on_finding(finding(id=finding_id, summary=f"problem number {n}"))
        alerter.on_finding(finding(id="d4" * 16, agent_name="billing-agent"))
        await until(lambda: len(receivers["pagerduty"].received()) == 4)
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(body, grouped, tmp_path / "alerts.db")

    slack = [r.body.decode() for r in receivers["slack"].received()]
    assert len(slack) == 2  # support-agent's three together, billing-agent's alone
    (together,) = [text for text in slack if "problem number 0" in text]
    assert all(f"problem number {n}" in together for n in range(3))
    assert "billing-agent" not in together
    assert len(receivers["pagerduty"].received()) == 4  # grouping is Slack's only


def test_an_agents_escalation_route_takes_its_findings_whatever_the_match(
    receivers: dict[str, Receiver], tmp_path: Path
) -> None:
    alerts = AlertsConfig.from_dict(
        {
            "allow_private_targets": True,
            "receivers": [
                {"name": "team", "slack": {"webhook_url": receivers["slack"].url("/slack")}},
                {
                    "name": "billing-oncall",
                    "pagerduty": {
                        "routing_key": "BILLING",
                        "url": receivers["pagerduty"].url("/v2/enqueue"),
                    },
                },
            ],
            "routes": [
                {"name": "chat", "receivers": ["team"]},
                {
                    "name": "billing",
                    "match": {"kind": ["nothing"]},
                    "receivers": ["billing-oncall"],
                },
            ],
        }
    )

    async def body(alerter: Alerter) -> None:
        alerter.escalation_of = lambda agent: "billing" if agent == "billing-agent" else ""
        alerter.on_finding(finding(id="e1" * 16, agent_name="billing-agent"))
        alerter.on_finding(finding(id="e2" * 16, agent_name="support-agent"))
        await until(lambda: len(receivers["slack"].received()) == 2)
        await until(lambda: alerter.outbox.pending_count() == 0)

    run(body, alerts, tmp_path / "alerts.db")

    (page,) = receivers["pagerduty"].received()  # only the billing agent's finding
    assert page.json()["dedup_key"].endswith("e1" * 16)

"""Alert delivery: findings → outbox → receivers, with retries, rate limits and order.

`Alerter.on_finding` is called (on the event loop) with every finding version the
detectors publish; it routes the finding and records the notifications durably. One
delivery task per receiver works that receiver's part of the outbox: at most
`per_second` requests a second, retrying 5xx, timeouts, connection errors and 429
(never sooner than its Retry-After) with exponential backoff and jitter; a 3xx (never
followed) or another 4xx fails the notification at once, with the receiver's answer
recorded. A slow or failing receiver never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from api.alerts._config import AlertsConfig, Receiver, Route
from api.alerts._formats import (
    Event,
    Links,
    group_slack_message,
    pagerduty_event,
    sign_webhook,
    slack_message,
    webhook_body,
)
from api.alerts._outbox import Notification, Outbox, Planned
from api.alerts._ssrf import UnsafeTargetError, guarded_async_client
from detectors import Finding

log = logging.getLogger("agentwatch.alerts")

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_REPEAT_CHECK_S = 30.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt came to: sent, retry (not before `retry_after_s`), or failed."""

    sent: bool
    retry: bool
    status_code: int | None
    error: str = ""
    retry_after_s: float = 0.0


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "agentwatch_alert_attempts",
            "Alert delivery attempts, by receiver and outcome (sent, retry, failed)",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "agentwatch_alerts_pending", "Notifications waiting for delivery", registry=registry
        )


class Alerter:
    def __init__(
        self,
        config: AlertsConfig,
        outbox_path: Path,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config
        self.outbox = Outbox(outbox_path)
        self.metrics = AlertMetrics(registry or CollectorRegistry())
        self._links = Links(api_url=config.links.api_url, grafana_url=config.links.grafana_url)
        self._wake = {receiver.name: asyncio.Event() for receiver in config.receivers}
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        # The escalation route of an agent's job description (set by serve when loaded).
        self.escalation_of: Callable[[str], str] = lambda agent: ""

    # -- intake (event loop) ---------------------------------------------------------

    def on_finding(self, finding: Finding) -> None:
        escalation = self.escalation_of(finding.agent_name)
        targets = [
            Planned(receiver.name, route.name, route.send_resolved, _hold_s(route, receiver))
            for route, receiver in self.config.targets(finding, escalation)
        ]
        if not targets:
            return
        if self.outbox.record(finding, targets):
            self._wake_all()

    def _wake_all(self) -> None:
        for event in self._wake.values():
            event.set()
        self.metrics.pending.set(self.outbox.pending_count())

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._client = guarded_async_client(
            self.config.allow_private_targets, timeout_s=self.config.delivery.timeout
        )
        self.metrics.pending.set(self.outbox.pending_count())
        for receiver in self.config.receivers:
            self._tasks.append(
                asyncio.create_task(self._deliver(receiver), name=f"alerts-{receiver.name}")
            )
        self._tasks.append(asyncio.create_task(self._repeat_loop(), name="alerts-repeat"))

    async def stop(self) -> None:
        """Stop delivering; what is pending stays in the outbox for the next start."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self.outbox.close()

    async def _repeat_loop(self) -> None:
        intervals = {route.name: route.repeat_interval for route in self.config.routes}
        while True:
            if await asyncio.to_thread(self.outbox.due_repeats, intervals):
                self._wake_all()
            await asyncio.sleep(_REPEAT_CHECK_S)

    # -- delivery --------------------------------------------------------------------

    async def _deliver(self, receiver: Receiver) -> None:
        wake = self._wake[receiver.name]
        spacing = 1.0 / receiver.per_second
        last_sent = 0.0
        while True:
            wake.clear()
            due = await asyncio.to_thread(self.outbox.due, receiver.name)
            for batch in self._batches(receiver, due):
                pause = last_sent + spacing - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)  # the receiver's rate limit
                last_sent = time.monotonic()
                await self._attempt(receiver, batch)
            if due:
                continue
            next_at = await asyncio.to_thread(self.outbox.next_due_at, receiver.name)
            timeout = 5.0 if next_at is None else min(5.0, max(0.05, next_at - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    def _batches(self, receiver: Receiver, due: list[Notification]) -> list[list[Notification]]:
        """One request each — except Slack triggers of one agent on a grouping route,
        which go out together as one message."""
        groups: dict[tuple[str, str, str], list[Notification]] = {}
        batches: list[list[Notification]] = []
        for notification in due:
            route = self.config.route_or_none(notification.route)
            if (
                receiver.slack is None
                or notification.event != "trigger"
                or not (route is not None and route.group_wait)
            ):
                batches.append([notification])
                continue
            key = (notification.tenant, notification.finding["agent_name"], route.name)
            if key not in groups:
                groups[key] = []
                batches.append(groups[key])
            groups[key].append(notification)
        return batches

    async def _attempt(self, receiver: Receiver, batch: list[Notification]) -> None:
        outcome = await self.send(receiver, batch)
        first = batch[0]
        for notification in batch:
            if outcome.sent:
                await asyncio.to_thread(
                    self.outbox.mark_sent, notification.id, outcome.status_code or 0
                )
            elif outcome.retry and not self._expired(first):
                delay = self._backoff(first.attempts)
                at = time.time() + max(delay, outcome.retry_after_s)
                await asyncio.to_thread(
                    self.outbox.mark_retry, notification.id, at, outcome.status_code, outcome.error
                )
            else:
                error = outcome.error if not outcome.retry else f"gave up: {outcome.error}"
                await asyncio.to_thread(
                    self.outbox.mark_failed, notification.id, outcome.status_code, error
                )
        label = "sent" if outcome.sent else "retry" if outcome.retry else "failed"
        self.metrics.attempts.labels(receiver.name, label).inc()
        if label == "failed":
            log.warning(
                "alert to %s failed for good (%s): %s", receiver.name, first.id, outcome.error
            )
        self.metrics.pending.set(await asyncio.to_thread(self.outbox.pending_count))

    def _expired(self, notification: Notification) -> bool:
        return time.time() - notification.created_at > self.config.delivery.give_up_after

    def _backoff(self, attempts: int) -> float:
        delivery = self.config.delivery
        base = min(delivery.max_backoff, delivery.min_backoff * 2.0 ** min(attempts, 30))
        return base * random.uniform(0.5, 1.0)

    async def send(self, receiver: Receiver, batch: list[Notification]) -> Outcome:
        """One attempt to deliver a notification (or a Slack group of them)."""
        assert self._client is not None, "Alerter.start() first"
        findings = [Finding.from_dict(n.finding) for n in batch]
        if len(batch) > 1 and receiver.slack is not None:
            message = group_slack_message(findings, self._links)
            request = httpx.Request("POST", receiver.slack.webhook_url, json=message)
        else:
            event = cast(Event, batch[0].event)
            request = build_request(receiver, findings[0], event, batch[0].id, self._links)
        try:
            response = await self._client.send(request)
        except UnsafeTargetError as exc:
            return Outcome(sent=False, retry=False, status_code=None, error=str(exc))
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken streams
            return Outcome(
                sent=False, retry=True, status_code=None, error=f"{type(exc).__name__}: {exc}"
            )
        return classify(response)


def _hold_s(route: Route, receiver: Receiver) -> float:
    """How long a Slack trigger waits for others of its group (0: no grouping)."""
    if receiver.slack is None or route.group_wait is None:
        return 0.0
    return route.group_wait


def build_request(
    receiver: Receiver, finding: Finding, event: Event, message_id: str, links: Links
) -> httpx.Request:
    """The HTTP request that tells `receiver` about `finding` (`event`: trigger/resolve/…)."""
    if receiver.slack is not None:
        return httpx.Request(
            "POST", receiver.slack.webhook_url, json=slack_message(finding, event, links)
        )
    if receiver.pagerduty is not None:
        body = pagerduty_event(finding, event, receiver.pagerduty.routing_key, links)
        return httpx.Request("POST", receiver.pagerduty.url, json=body)
    assert receiver.webhook is not None
    content = webhook_body(finding, event)
    headers = sign_webhook(receiver.webhook.secret, message_id, int(time.time()), content)
    headers["content-type"] = "application/json"
    return httpx.Request("POST", receiver.webhook.url, content=content, headers=headers)


def classify(response: httpx.Response) -> Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(sent=True, retry=False, status_code=status)
    answer = response.text[:500]
    if 300 <= status < 400:
        location = response.headers.get("location", "")
        return Outcome(
            sent=False,
            retry=False,
            status_code=status,
            error=f"redirect to {location!r} not followed",
        )
    if status in _RETRY_STATUS:
        return Outcome(
            sent=False,
            retry=True,
            status_code=status,
            error=f"HTTP {status}: {answer}",
            retry_after_s=retry_after_s(response.headers.get("retry-after")),
        )
    return Outcome(sent=False, retry=False, status_code=status, error=f"HTTP {status}: {answer}")


def retry_after_s(value: str | None, now: float | None = None) -> float:
    """Retry-After as seconds: delta-seconds or an HTTP date (0 when absent or bad)."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def sample_finding(route: str) -> Finding:
    """The synthetic finding `agentwatch alerts test` sends through a route."""
    now_ns = time.time_ns()
    return Finding(
        id=f"test{now_ns:028x}"[:32],
        kind="test",
        tenant="default",
        severity="info",
        summary=f"agentwatch test notification for route {route}",
        opened_at_ns=now_ns,
        updated_at_ns=now_ns,
        agent_name="agentwatch",
        evidence={"route": route},
    )


async def send_test(config: AlertsConfig, route_name: str) -> list[tuple[Receiver, Outcome]]:
    """One attempt to each receiver of a route, outside the outbox; the outcomes."""
    route = config.route(route_name)
    finding = sample_finding(route_name)
    links = Links(api_url=config.links.api_url, grafana_url=config.links.grafana_url)
    results = []
    async with guarded_async_client(
        config.allow_private_targets, timeout_s=config.delivery.timeout
    ) as client:
        for name in route.receivers:
            receiver = config.receiver(name)
            request = build_request(receiver, finding, "test", finding.id, links)
            try:
                outcome = classify(await client.send(request))
            except (UnsafeTargetError, httpx.HTTPError) as exc:
                outcome = Outcome(sent=False, retry=False, status_code=None, error=str(exc))
            results.append((receiver, outcome))
    return results

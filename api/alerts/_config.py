"""Alert routes and receivers: the `alerts:` section of the YAML config.

    alerts:
      allow_private_targets: false        # true only for on-prem receivers and tests
      links: {api_url: "https://agentwatch.example.com", grafana_url: "https://grafana…"}
      receivers:
        - name: oncall
          pagerduty: {routing_key: "…", url: "https://events.pagerduty.com/v2/enqueue"}
        - name: team
          slack: {webhook_url: "https://hooks.slack.com/services/…"}
        - name: audit
          webhook: {url: "https://…", secret: "whsec_…"}
      routes:
        - match: {kind: [zombie_run, tool_failure_spike], severity: [critical, error]}
          receivers: [oncall, team]
          repeat_interval: "4h"
          send_resolved: true

Every route whose `match` fits a finding sends it to its receivers; a receiver named
by several matching routes gets the finding once, with the first route's settings.
Unknown keys and bad values are a one-line error naming the setting; receiver URLs
are checked against SSRF when the config is loaded (and again at connect time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from api.alerts._ssrf import UnsafeTargetError, check_url
from detectors import Finding
from detectors._config import Duration, _validate

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("info", "warning", "error", "critical")


class AlertConfigError(ValueError):
    """A bad `alerts:` section; the message is one line naming the setting."""


def _as_list(value: Any) -> Any:
    """`kind: zombie_run` means `kind: [zombie_run]`."""
    return [value] if isinstance(value, str) else value


StrList = Annotated[tuple[str, ...], BeforeValidator(_as_list)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackReceiver(_Section):
    webhook_url: str = Field(min_length=1)
    per_second: float = Field(default=1.0, gt=0.0)  # Slack: about one message a second


class PagerDutyReceiver(_Section):
    routing_key: str = Field(min_length=1)
    url: str = PAGERDUTY_EVENTS_URL  # e.g. https://events.eu.pagerduty.com/v2/enqueue
    per_second: float = Field(default=2.0, gt=0.0)  # PagerDuty: about 120 events a minute


class WebhookReceiver(_Section):
    url: str = Field(min_length=1)
    secret: str = Field(min_length=8)  # Standard Webhooks; "whsec_<base64>" or any text
    per_second: float = Field(default=10.0, gt=0.0)


class Receiver(_Section):
    name: str = Field(min_length=1)
    slack: SlackReceiver | None = None
    pagerduty: PagerDutyReceiver | None = None
    webhook: WebhookReceiver | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Receiver:
        kinds = [k for k in ("slack", "pagerduty", "webhook") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a receiver needs exactly one of slack, pagerduty, webhook")
        return self

    @property
    def kind(self) -> str:
        return "slack" if self.slack else "pagerduty" if self.pagerduty else "webhook"

    @property
    def url(self) -> str:
        if self.slack is not None:
            return self.slack.webhook_url
        if self.pagerduty is not None:
            return self.pagerduty.url
        assert self.webhook is not None
        return self.webhook.url

    @property
    def per_second(self) -> float:
        settings = self.slack or self.pagerduty or self.webhook
        assert settings is not None
        return settings.per_second


class Match(_Section):
    """Empty lists match everything; a finding matches when every given list has it."""

    kind: StrList = ()
    severity: StrList = ()
    tenant: StrList = ()
    agent: StrList = ()
    service: StrList = ()
    tool: StrList = ()

    @model_validator(mode="after")
    def _known_severities(self) -> Match:
        unknown = [s for s in self.severity if s not in SEVERITIES]
        if unknown:
            raise ValueError(f"unknown severity {unknown[0]!r} (known: {', '.join(SEVERITIES)})")
        return self

    def fits(self, finding: Finding) -> bool:
        checks = (
            (self.kind, finding.kind),
            (self.severity, finding.severity),
            (self.tenant, finding.tenant),
            (self.agent, finding.agent_name),
            (self.service, finding.service_name),
            (self.tool, finding.tool_name),
        )
        return all(not wanted or value in wanted for wanted, value in checks)


class Route(_Section):
    name: str = ""  # default: route-<n>
    match: Match = Match()
    receivers: Annotated[tuple[str, ...], Field(min_length=1)]
    repeat_interval: Duration = 4 * 3600.0  # re-send a still-open finding this often
    send_resolved: bool = True
    # Slack: findings of one agent opened within this window go out as one message.
    group_wait: Duration | None = None


class Links(_Section):
    api_url: str | None = None
    grafana_url: str | None = None


class Delivery(_Section):
    timeout: Duration = 10.0
    give_up_after: Duration = 24 * 3600.0  # a notification still failing is marked failed
    min_backoff: Duration = 1.0  # the first retry's wait; doubles per attempt, with jitter
    max_backoff: Duration = 300.0


class AlertsConfig(_Section):
    allow_private_targets: bool = False
    links: Links = Links()
    delivery: Delivery = Delivery()
    receivers: tuple[Receiver, ...] = ()
    routes: tuple[Route, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> AlertsConfig:
        names = [r.name for r in self.receivers]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate:
            raise ValueError(f"receiver name {duplicate!r} is used twice")
        for index, route in enumerate(self.routes):
            unknown = [r for r in route.receivers if r not in names]
            if unknown:
                raise ValueError(f"routes[{index}]: unknown receiver {unknown[0]!r}")
        return self

    @classmethod
    def from_dict(cls, section: dict[str, Any] | None, check_targets: bool = True) -> AlertsConfig:
        """Validate the `alerts:` section (None: no alerting); SSRF-check receiver URLs."""
        try:
            config: AlertsConfig = _validate(cls, section or {}, "alerts")
        except ValueError as exc:
            raise AlertConfigError(str(exc)) from None
        routes = tuple(
            route if route.name else route.model_copy(update={"name": f"route-{n}"})
            for n, route in enumerate(config.routes)
        )
        config = config.model_copy(update={"routes": routes})
        if check_targets:
            for index, receiver in enumerate(config.receivers):
                try:
                    check_url(receiver.url, config.allow_private_targets)
                except UnsafeTargetError as exc:
                    raise AlertConfigError(
                        f"alerts.receivers.{index} ({receiver.name}): {exc}"
                    ) from None
        return config

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)

    def route(self, name: str) -> Route:
        return next(r for r in self.routes if r.name == name)

    def route_or_none(self, name: str) -> Route | None:
        """A notification's route, None if the config no longer has it."""
        return next((r for r in self.routes if r.name == name), None)

    def targets(self, finding: Finding, escalation: str = "") -> Sequence[tuple[Route, Receiver]]:
        """(route, receiver) for each receiver this finding goes to (once per receiver).

        `escalation`: the route the agent's job description names; it takes every
        finding of that agent, whatever its `match` says.
        """
        chosen: dict[str, tuple[Route, Receiver]] = {}
        for route in self.routes:
            if route.match.fits(finding) or route.name == escalation:
                for name in route.receivers:
                    chosen.setdefault(name, (route, self.receiver(name)))
        return list(chosen.values())

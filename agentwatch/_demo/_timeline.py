"""The incidents the demo injects, when, and how a finding is matched to each.

Times are fractions of `--duration`, so a longer demo spreads them out. Each incident
records when it actually took effect (a hang starts when a worker makes the call),
its trace when it has one, and the first finding of the API that matches it: the
kind, the agent, and the tool or trace where known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentwatch._demo._agents import (
    BILLING,
    FORBIDDEN_ARGUMENTS,
    FORBIDDEN_TOOL,
    RESEARCH,
    SUPPORT,
    SWAP_MODEL,
)
from agentwatch._demo._fleet import Fleet, OneShot

Finding = dict[str, Any]

OUTAGE_RATE = 0.55
LOOP_REPEATS = 10
LOOP_ARGUMENTS = {"url": "https://example.org/papers/rate-limits-explained"}


@dataclass
class Incident:
    name: str
    kind: str  # the finding kind that detects it
    agent: str
    service: str
    what: str  # one line: what is injected
    at_s: float  # offset into the timeline
    tool: str = ""  # when the finding must name a tool
    change: str = ""  # change_point: which change
    injected_at: float | None = None  # wall clock, when it took effect
    trace_id: str = ""  # its run, when it has one (then the finding must name it)
    finding: Finding | None = None  # the first finding that detected it
    seen_at: float | None = None  # wall clock, when the demo saw that finding in the API
    explained: list[str] = field(default_factory=list)  # further findings it caused

    def start(self, trace_id: str = "") -> None:
        if self.injected_at is None:
            self.injected_at = time.time()
            self.trace_id = trace_id

    def explains(self, finding: Finding) -> bool:
        """Whether `finding` is about this incident (kind, agent, tool / trace, time)."""
        if self.injected_at is None or finding["kind"] != self.kind:
            return False
        if opened_at(finding) < self.injected_at - 1.0:
            return False
        agent = finding["agent_name"]
        if self.kind == "tool_failure_spike":
            # Per agent, or the tool across agents (agent "").
            return finding["tool_name"] == self.tool and agent in ("", self.agent, self.service)
        if agent not in (self.agent, self.service):
            return False
        if self.trace_id and finding["trace_id"] != self.trace_id:
            return False
        if self.tool and finding["tool_name"] != self.tool:
            return False
        return not self.change or finding["evidence"].get("change") == self.change

    @property
    def detected_after_s(self) -> float | None:
        if self.finding is None or self.injected_at is None:
            return None
        return max(0.0, opened_at(self.finding) - self.injected_at)

    @property
    def seen_after_s(self) -> float | None:
        if self.seen_at is None or self.injected_at is None:
            return None
        return max(0.0, self.seen_at - self.injected_at)


def opened_at(finding: Finding) -> float:
    return datetime.fromisoformat(finding["opened_at"]).timestamp()


@dataclass
class Step:
    at_s: float
    label: str
    action: Callable[[], None]


class Timeline:
    """The incidents and the steps that inject (and end) them, scaled to `duration_s`."""

    def __init__(self, fleet: Fleet, duration_s: float) -> None:
        self.duration_s = duration_s
        d = duration_s
        self.zombie = Incident(
            "zombie run",
            "zombie_run",
            BILLING.name,
            BILLING.service,
            "ledger.get_invoice never answers; the run's heartbeats stop",
            0.20 * d,
        )
        self.loop = Incident(
            "runaway loop",
            "runaway_loop",
            RESEARCH.name,
            RESEARCH.service,
            f"web.fetch with the same URL, {LOOP_REPEATS} times in one run",
            0.30 * d,
        )
        self.scope = Incident(
            "scope violation",
            "scope_violation",
            BILLING.name,
            BILLING.service,
            f"calls {FORBIDDEN_TOOL}, outside its allowed_tools",
            0.35 * d,
            tool=FORBIDDEN_TOOL,
        )
        self.outage = Incident(
            "tool outage",
            "tool_failure_spike",
            RESEARCH.name,
            RESEARCH.service,
            f"web.search fails {OUTAGE_RATE:.0%} of calls (background 3%)",
            0.40 * d,
            tool="web.search",
        )
        self.swap = Incident(
            "model swap",
            "change_point",
            SUPPORT.name,
            SUPPORT.service,
            f"{SUPPORT.model.request} silently replaced by {SWAP_MODEL.request}",
            0.45 * d,
            change="model",
        )
        self.decay = Incident(
            "quality decay",
            "quality_drift",
            SUPPORT.name,
            SUPPORT.service,
            "helpfulness scores fall from ~0.86 to ~0.56 after the swap",
            0.45 * d,
        )
        self.incidents = [self.zombie, self.loop, self.scope, self.outage, self.swap, self.decay]
        self._fleet = fleet
        self.steps = sorted(self._steps(d), key=lambda s: s.at_s)
        self._next = 0

    def _steps(self, d: float) -> list[Step]:
        billing, research, support = (self._fleet[s.name] for s in (BILLING, RESEARCH, SUPPORT))

        def hang() -> None:
            billing.faults.hang = OneShot("ledger.get_invoice", {}, self.zombie.start)

        def loop() -> None:
            research.faults.loop = OneShot(
                "web.fetch", LOOP_ARGUMENTS, self.loop.start, repeats=LOOP_REPEATS
            )

        def violate() -> None:
            billing.faults.extra = OneShot(FORBIDDEN_TOOL, FORBIDDEN_ARGUMENTS, self.scope.start)

        def outage() -> None:
            research.faults.failure_rates["web.search"] = OUTAGE_RATE
            self.outage.start()

        def recover() -> None:
            research.faults.failure_rates.pop("web.search", None)

        def swap() -> None:
            support.faults.swapped_at = time.monotonic()
            support.faults.model = SWAP_MODEL
            self.swap.start()
            self.decay.start()

        return [
            Step(self.zombie.at_s, f"zombie run: {BILLING.name}: {self.zombie.what}", hang),
            Step(self.loop.at_s, f"runaway loop: {RESEARCH.name}: {self.loop.what}", loop),
            Step(self.scope.at_s, f"scope violation: {BILLING.name} {self.scope.what}", violate),
            Step(self.outage.at_s, f"tool outage: {RESEARCH.name}: {self.outage.what}", outage),
            Step(self.swap.at_s, f"model swap: {SUPPORT.name}: {self.swap.what}", swap),
            Step(
                0.75 * d,
                f"{BILLING.name}: ledger.get_invoice answers again",
                billing.faults.release_all,
            ),
            Step(0.80 * d, f"{RESEARCH.name}: web.search recovers", recover),
        ]

    def advance(self, elapsed_s: float) -> list[Step]:
        """Run the steps due by `elapsed_s`; return them."""
        due = []
        while self._next < len(self.steps) and self.steps[self._next].at_s <= elapsed_s:
            step = self.steps[self._next]
            step.action()
            due.append(step)
            self._next += 1
        return due

    def match(self, finding: Finding, now: float) -> Incident | None:
        """The incident `finding` is about, recording it as detected if it is the first."""
        for incident in self.incidents:
            if incident.explains(finding):
                if incident.finding is None:
                    incident.finding, incident.seen_at = finding, now
                elif finding["id"] not in (incident.finding["id"], *incident.explained):
                    incident.explained.append(finding["id"])
                return incident
        return None

    @property
    def all_detected(self) -> bool:
        return all(i.finding is not None for i in self.incidents)

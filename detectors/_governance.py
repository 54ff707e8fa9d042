"""Governance: telemetry checked against the agents' job descriptions (`_jobs.py`).

- `scope_violation`: a registered agent called a tool, or a model, its job description
  does not allow — one finding per (agent, tool or model), updated with each further
  call, resolved `settle` after the last one;
- `unregistered_agent`: telemetry from an agent with no job description (sprawl) —
  one per agent, resolved when a description for it is loaded;
- `ownerless_agent`: a registered agent without an owner or without a backup owner
  (succession risk) — resolved when both are named;
- `budget_exceeded`: a run past its job's step, token or cost budget (`cost_usd`: its
  LLM calls priced with the dated price table; unpriced calls add nothing) — one per
  run, resolved `settle` after the run's last step.

All of it is off until job descriptions are loaded (no registry, no governance).

Spans are judged under the right agent: a step that arrives before its run's agent
span carries only its service's name, and would look like an unregistered agent. Such
a span waits (up to `attribution_wait` of event time) until a span of its trace names
the agent — the agent span, a pending marker or a heartbeat — and is judged as that
agent's; one that is never claimed is judged under its service's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors._common import LLM_OPERATIONS, NS, BoundedDict, iso
from detectors._config import DetectorConfig
from detectors._findings import Finding, FindingSink, open_finding, resolve_finding, update_finding
from detectors._jobs import JobDescription, JobRegistry
from ingest import AgentSpan
from ingest._prices import PriceTable

SCOPE_VIOLATION = "scope_violation"
UNREGISTERED_AGENT = "unregistered_agent"
OWNERLESS_AGENT = "ownerless_agent"
BUDGET_EXCEEDED = "budget_exceeded"
_EXAMPLES = 5
_ROLE = {"owner": "an owner", "backup_owner": "a backup owner"}


@dataclass(slots=True)
class _Run:
    tenant: str
    agent_name: str
    service_name: str
    trace_id: str
    steps: int = 0
    tokens: int = 0
    last_ns: int = 0
    finding: Finding | None = None
    cost_usd: float = 0.0
    unpriced: int = 0  # LLM calls no price matched


@dataclass(slots=True)
class _Violation:
    finding: Finding
    last_ns: int
    calls: int = 1
    traces: list[str] = field(default_factory=list)


class GovernanceDetector:
    kind = "governance"  # the state's key; its findings have the four kinds above

    def __init__(
        self,
        config: DetectorConfig,
        sink: FindingSink,
        prices: PriceTable | None = None,
        max_runs: int = 100_000,
    ):
        self._config = config
        self._sink = sink
        self._prices = prices  # None: no cost budgets
        self._jobs: JobRegistry | None = None
        self._violations: BoundedDict[tuple[str, str, str, str], _Violation] = BoundedDict(20_000)
        self._unregistered: BoundedDict[tuple[str, str], Finding] = BoundedDict(10_000)
        self._ownerless: BoundedDict[tuple[str, str], Finding] = BoundedDict(10_000)
        self._runs: BoundedDict[tuple[str, str], _Run] = BoundedDict(max_runs)
        self._trace_agents: BoundedDict[tuple[str, str], str] = BoundedDict(100_000)
        self._waiting: BoundedDict[tuple[str, str], list[AgentSpan]] = BoundedDict(20_000)
        self._now_ns = 0

    def set_jobs(self, jobs: JobRegistry | None) -> None:
        """Take a (re)loaded registry; what it settles resolves at the next tick."""
        self._jobs = jobs

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        if self._jobs is None:
            return
        self._judge(self._attributed(spans))

    def _attributed(self, spans: Sequence[AgentSpan]) -> list[AgentSpan]:
        """The spans whose agent is known, in order; the others wait for their trace's."""
        for span in spans:
            if span.agent_name and span.agent_name != span.service_name:
                self._trace_agents[(span.tenant, span.trace_id)] = span.agent_name
        ready: list[AgentSpan] = []
        for span in spans:
            key = (span.tenant, span.trace_id)
            agent = self._trace_agents.get(key)
            waiting = self._waiting.pop(key, None)
            if waiting is not None and agent is not None:
                ready.extend(s._replace(agent_name=agent) for s in waiting)
            elif waiting is not None:
                self._waiting[key] = waiting
            if span.is_marker or not span.agent_name:
                continue
            if span.agent_name != span.service_name:
                ready.append(span)
            elif agent is not None:
                ready.append(span._replace(agent_name=agent))
            else:
                self._waiting.setdefault(key, []).append(span)
        return ready

    def _judge(self, spans: Sequence[AgentSpan]) -> None:
        jobs = self._jobs
        assert jobs is not None
        for span in spans:
            self._now_ns = max(self._now_ns, span.end_ns)
            job = jobs.get(span.agent_name)
            if job is None:
                self._note_unregistered(span)
                continue
            self._note_owners(span, job)
            if span.tool_name and span.operation != "invoke_agent":
                if not job.allows_tool(span.tool_name):
                    self._violation(span, job, "tool", span.tool_name)
                self._count_step(span, job)
            elif span.operation in LLM_OPERATIONS:
                if span.model and not job.allows_model(span.model):
                    self._violation(span, job, "model", span.model)
                self._count_step(span, job)

    # -- scope ------------------------------------------------------------------------

    def _violation(self, span: AgentSpan, job: JobDescription, what: str, name: str) -> None:
        key = (span.tenant, span.agent_name, what, name)
        known = self._violations.get(key)
        allowed = job.allowed_tools if what == "tool" else job.allowed_models
        if known is not None and not known.finding.resolved_at_ns:
            known.calls += 1
            known.last_ns = max(known.last_ns, span.end_ns)
            if span.trace_id not in known.traces:
                known.traces = [*known.traces, span.trace_id][-_EXAMPLES:]
            update_finding(
                self._sink,
                known.finding,
                now_ns=span.end_ns,
                evidence={
                    **known.finding.evidence,
                    "calls": known.calls,
                    "example_trace_ids": known.traces,
                    "last_at": iso(span.end_ns),
                },
            )
            return
        finding = open_finding(
            self._sink,
            kind=SCOPE_VIOLATION,
            tenant=span.tenant,
            incident=f"{span.agent_name}\x00{what}\x00{name}\x00{span.end_ns}",
            severity="error",
            summary=(
                f"{span.agent_name} called {what} {name}, which its job description does not allow"
            ),
            now_ns=span.end_ns,
            evidence={
                "what": what,
                "name": name,
                "allowed": list(allowed),
                "calls": 1,
                "span_id": span.span_id,
                "example_trace_ids": [span.trace_id],
                "owner": job.owner,
                "escalation": job.escalation,
                "last_at": iso(span.end_ns),
            },
            agent_name=span.agent_name,
            service_name=span.service_name,
            tool_name=name if what == "tool" else "",
            trace_id=span.trace_id,
            run_id=span.run_id,
        )
        self._violations[key] = _Violation(finding, span.end_ns, traces=[span.trace_id])

    # -- sprawl -----------------------------------------------------------------------

    def _note_unregistered(self, span: AgentSpan) -> None:
        key = (span.tenant, span.agent_name)
        if key in self._unregistered:
            return
        self._unregistered[key] = open_finding(
            self._sink,
            kind=UNREGISTERED_AGENT,
            tenant=span.tenant,
            incident=span.agent_name,
            severity="warning",
            summary=f"{span.agent_name} sends telemetry but has no job description",
            now_ns=span.end_ns,
            evidence={
                "service_name": span.service_name,
                "first_seen_at": iso(span.end_ns),
                "example_trace_id": span.trace_id,
            },
            agent_name=span.agent_name,
            service_name=span.service_name,
            trace_id=span.trace_id,
        )

    # -- budgets ----------------------------------------------------------------------

    def _count_step(self, span: AgentSpan, job: JobDescription) -> None:
        budgets = job.budgets
        if budgets.steps is None and budgets.tokens is None and budgets.cost_usd is None:
            return
        key = (span.tenant, span.run_id)
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _Run(
                span.tenant, span.agent_name, span.service_name, span.trace_id
            )
        run.steps += 1
        run.tokens += span.input_tokens + span.output_tokens
        run.last_ns = max(run.last_ns, span.end_ns)
        if span.operation in LLM_OPERATIONS and self._prices is not None:
            self._add_cost(run, span)
        over: list[tuple[str, float, float]] = []
        if budgets.steps is not None and run.steps > budgets.steps:
            over.append(("steps", run.steps, budgets.steps))
        if budgets.tokens is not None and run.tokens > budgets.tokens:
            over.append(("tokens", run.tokens, budgets.tokens))
        if budgets.cost_usd is not None and run.cost_usd > budgets.cost_usd:
            over.append(("cost_usd", round(run.cost_usd, 6), budgets.cost_usd))
        if not over or run.finding is not None:
            return
        what, used, budget = over[0]
        usage = f"${used:.2f}" if what == "cost_usd" else f"{used} {what}"
        limit = f"${budget:.2f}" if what == "cost_usd" else f"{budget}"
        run.finding = open_finding(
            self._sink,
            kind=BUDGET_EXCEEDED,
            tenant=span.tenant,
            incident=f"{span.agent_name}\x00{span.run_id}",
            severity="error",
            summary=f"{span.agent_name}: a run used {usage}, over its budget of {limit}",
            now_ns=span.end_ns,
            evidence={
                "budget": what,
                "used": used,
                "limit": budget,
                "steps": run.steps,
                "tokens": run.tokens,
                "cost_usd": round(run.cost_usd, 6),
                "unpriced_llm_calls": run.unpriced,
                "escalation": job.escalation,
            },
            agent_name=span.agent_name,
            service_name=span.service_name,
            tool_name=span.tool_name,
            trace_id=span.trace_id,
            run_id=span.run_id,
        )

    def _add_cost(self, run: _Run, span: AgentSpan) -> None:
        assert self._prices is not None
        cost = self._prices.span_cost(
            span.attributes,
            span.model,
            span.provider,
            span.start_ns,
            span.input_tokens,
            span.output_tokens,
        )
        if cost is None:
            run.unpriced += 1
        else:
            run.cost_usd += cost.total_usd

    # -- time -------------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        settings = self._config.defaults.governance
        if self._jobs is not None and self._waiting:
            wait_ns = int(settings.attribution_wait * NS)
            unclaimed = [
                key
                for key, spans in self._waiting.items()
                if now_ns - max(s.end_ns for s in spans) >= wait_ns
            ]
            for key in unclaimed:
                self._judge(self._waiting.pop(key))  # judged under the service's name
        settle_ns = int(settings.settle * NS)
        for violation in self._violations.values():
            finding = violation.finding
            if not finding.resolved_at_ns and now_ns - violation.last_ns >= settle_ns:
                resolve_finding(self._sink, finding, now_ns=now_ns, reason="no new calls")
        for run in self._runs.values():
            if run.finding and not run.finding.resolved_at_ns and now_ns - run.last_ns >= settle_ns:
                resolve_finding(self._sink, run.finding, now_ns=now_ns, reason="run quiet")
        jobs = self._jobs
        if jobs is None:
            return
        for key, finding in list(self._unregistered.items()):
            if not finding.resolved_at_ns and jobs.get(key[1]) is not None:
                resolve_finding(self._sink, finding, now_ns=now_ns, reason="job description loaded")
        self._check_owners(jobs, now_ns)

    def _check_owners(self, jobs: JobRegistry, now_ns: int) -> None:
        for key, finding in self._ownerless.items():
            job = jobs.get(key[1])
            if not finding.resolved_at_ns and (job is None or not job.missing_owners):
                resolve_finding(self._sink, finding, now_ns=now_ns, reason="owners named")

    def _note_owners(self, span: AgentSpan, job: JobDescription) -> None:
        """An agent at work without an owner and a backup owner: once per tenant."""
        key = (span.tenant, span.agent_name)
        known = self._ownerless.get(key)
        if not job.missing_owners or (known is not None and not known.resolved_at_ns):
            return
        missing = job.missing_owners
        self._ownerless[key] = open_finding(
            self._sink,
            kind=OWNERLESS_AGENT,
            tenant=span.tenant,
            incident=f"{span.agent_name}\x00{span.end_ns}",
            severity="warning",
            summary=f"{span.agent_name} runs without {' or '.join(_ROLE[m] for m in missing)}",
            now_ns=span.end_ns,
            evidence={"missing": missing, "owner": job.owner, "backup_owner": job.backup_owner},
            agent_name=span.agent_name,
            service_name=span.service_name,
        )

    # -- state ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "violations": [
                [list(k), v.finding.as_dict(), v.last_ns, v.calls, v.traces]
                for k, v in self._violations.items()
            ],
            "unregistered": [[list(k), f.as_dict()] for k, f in self._unregistered.items()],
            "ownerless": [[list(k), f.as_dict()] for k, f in self._ownerless.items()],
            "runs": [
                [
                    list(k),
                    r.tenant,
                    r.agent_name,
                    r.service_name,
                    r.trace_id,
                    r.steps,
                    r.tokens,
                    r.last_ns,
                    r.finding.as_dict() if r.finding else None,
                    r.cost_usd,
                    r.unpriced,
                ]
                for k, r in self._runs.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        for key, finding, last_ns, calls, traces in state.get("violations", []):
            self._violations[(key[0], key[1], key[2], key[3])] = _Violation(
                Finding.from_dict(finding), last_ns, calls, traces
            )
        for key, finding in state.get("unregistered", []):
            self._unregistered[(key[0], key[1])] = Finding.from_dict(finding)
        for key, finding in state.get("ownerless", []):
            self._ownerless[(key[0], key[1])] = Finding.from_dict(finding)
        for row in state.get("runs", []):
            key, tenant, agent, service, trace, steps, tokens, last_ns, finding = row[:9]
            run = _Run(tenant, agent, service, trace, steps, tokens, last_ns)
            run.finding = Finding.from_dict(finding) if finding else None
            if len(row) > 9:  # saved before cost budgets: no cost counted yet
                run.cost_usd, run.unpriced = row[9], row[10]
            self._runs[(key[0], key[1])] = run

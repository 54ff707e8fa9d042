"""Evaluation results that arrive as log records, joined to the agent of their trace.

A `gen_ai.evaluation.result` log record names a trace and span, rarely the agent.
The join remembers the agent of recent traces (from the spans the detectors see) and
gives each evaluation its trace's agent. An evaluation that arrives before any span
of its trace (spans and logs are exported separately) waits, up to `max_wait_ns` of
event time, for one; then it takes the record's service name, as a span without an
agent does.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any

from detectors._common import NS
from ingest import AgentSpan
from ingest._agent_spans import EVALUATION_MARKER, evaluation_of


class EvaluationJoin:
    def __init__(
        self,
        max_traces: int = 200_000,
        max_waiting: int = 20_000,
        max_wait_ns: int = 120 * NS,
    ) -> None:
        self._max_traces = max_traces
        self._max_waiting = max_waiting
        self._max_wait_ns = max_wait_ns
        # (tenant, trace id) -> agent; a plain dict in insertion order, trimmed in bulk:
        # it is written for every span, so it must cost no more than a dict store.
        self._trace_agents: dict[tuple[str, str], str] = {}
        self._waiting: list[AgentSpan] = []

    def split(self, spans: Sequence[AgentSpan]) -> tuple[Sequence[AgentSpan], list[AgentSpan]]:
        """(the spans for every detector, evaluations ready for quality_drift)."""
        agents = self._trace_agents
        carriers: list[AgentSpan] = []
        for span in spans:
            if span.marker == EVALUATION_MARKER:
                carriers.append(span)
            elif not span.marker:
                # An agent's own invoke_agent span is the best word on its trace.
                key = (span.tenant, span.trace_id)
                if span.operation == "invoke_agent" or key not in agents:
                    agents[key] = span.agent_name
        if len(agents) > self._max_traces * 5 // 4:  # trim a quarter at once, not per span
            for key in list(islice(agents, len(agents) - self._max_traces)):
                del agents[key]
        if not carriers and not self._waiting:
            return spans, []
        regular = (
            [span for span in spans if span.marker != EVALUATION_MARKER] if carriers else spans
        )
        ready: list[AgentSpan] = []
        still_waiting: list[AgentSpan] = []
        for carrier in [*self._waiting, *carriers]:
            joined = self._joined(carrier)
            (ready if joined is not None else still_waiting).append(joined or carrier)
        self._waiting = still_waiting[-self._max_waiting :]
        return regular, ready

    def expire(self, now_ns: int) -> list[AgentSpan]:
        """Evaluations that waited long enough for their trace: they take the service."""
        if not self._waiting:
            return []
        cutoff = now_ns - self._max_wait_ns
        due = [c for c in self._waiting if c.end_ns <= cutoff]
        if not due:
            return []
        self._waiting = [c for c in self._waiting if c.end_ns > cutoff]
        return [c._replace(agent_name=c.service_name) for c in due]

    def _joined(self, carrier: AgentSpan) -> AgentSpan | None:
        if carrier.agent_name:
            return carrier
        agent = self._trace_agents.get((carrier.tenant, carrier.trace_id))
        return carrier._replace(agent_name=agent) if agent else None

    def snapshot(self) -> dict[str, Any]:
        # Only the waiting evaluations: the trace memory refills from the next spans.
        return {
            "waiting": [
                [
                    c.tenant,
                    c.service_name,
                    c.trace_id,
                    c.span_id,
                    c.run_id,
                    c.end_ns,
                    e.name,
                    e.score,
                    e.label,
                ]
                for c in self._waiting
                for e in c.evaluations
            ]
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._waiting = [
            _carrier(tenant, service, trace_id, span_id, run_id, at_ns, name, score, label)
            for tenant, service, trace_id, span_id, run_id, at_ns, name, score, label in state.get(
                "waiting", []
            )
        ]


def _carrier(
    tenant: str,
    service: str,
    trace_id: str,
    span_id: str,
    run_id: str,
    at_ns: int,
    name: str,
    score: float | None,
    label: str,
) -> AgentSpan:
    attrs = {"gen_ai.evaluation.name": name, "gen_ai.evaluation.score.label": label}
    if score is not None:
        attrs["gen_ai.evaluation.score.value"] = repr(score)
    return AgentSpan(
        tenant,
        service,
        "",
        trace_id,
        span_id,
        "",
        "gen_ai.evaluation.result",
        at_ns,
        at_ns,
        "",
        run_id,
        "",
        "",
        "",
        0,
        0,
        False,
        "",
        marker=EVALUATION_MARKER,
        evaluations=(evaluation_of(at_ns, attrs),),
    )

"""zombie_run: a run that is still open but has made no progress for too long.

OTLP exports a span when it ends, so a hung step sends nothing. A run (one trace) is
known to be *open* while one of its spans is known to have started and not ended:

- a pending marker (agentwatch_sdk's PendingSpanProcessor) names a span that started;
- a heartbeat's parent is the span the agent's loop is in, so it is running;
- a step (an LLM call, a tool call, …) that ended has a parent that is still running
  until it arrives itself — except the parent of an `invoke_agent` span, which is
  outside the run (often a caller's span that agentwatch never receives).

Activity is any span of the run ending, a marker, or a heartbeat. An open run with no
activity for longer than its agent's idle threshold is a zombie. The threshold adapts
to the agent's own rhythm — `idle_multiplier` x the `idle_quantile` of its recent gaps
between activity, never below `min_idle` — or is fixed by `idle`. Gaps that were
themselves incidents are not learnt from.

Only agent runs are watched: a trace with an agent span (`invoke_agent`, or its pending
marker), a heartbeat, or any pending marker. Times are event times (span timestamps);
`tick(now)` compares them with the clock it is given.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors._common import NS, BoundedDict, human_duration, iso
from detectors._config import DetectorConfig, ZombieRunConfig
from detectors._findings import (
    Finding,
    FindingSink,
    Severity,
    open_finding,
    resolve_finding,
    update_finding,
)
from detectors._gaps import GapHistory
from ingest import AgentSpan

KIND = "zombie_run"
_AGENT_ROOT = "invoke_agent"
_MAX_ENDED_PER_RUN = 4096
_RETAIN_CLOSED_NS = 600 * NS  # late spans of a finished run are recognised this long


@dataclass(slots=True)
class _OpenSpan:
    name: str
    operation: str
    tool_name: str
    start_ns: int
    announced: bool  # by a pending marker (else inferred from a child or a heartbeat)


@dataclass(slots=True)
class _Run:
    tenant: str
    trace_id: str
    service_name: str
    instance_id: str = ""
    agent_name: str = ""
    agent_from_root: bool = False
    run_id: str = ""
    watched: bool = False
    last_activity_ns: int = 0
    last_heartbeat_ns: int = 0
    closed_at_ns: int = 0
    open_spans: dict[str, _OpenSpan] = field(default_factory=dict)
    ended: dict[str, None] = field(default_factory=dict)  # an ordered, capped set
    finding: Finding | None = None


class ZombieRunDetector:
    kind = KIND

    def __init__(self, config: DetectorConfig, sink: FindingSink, max_runs: int = 200_000):
        self._config = config
        self._sink = sink
        self._runs: BoundedDict[tuple[str, str], _Run] = BoundedDict(max_runs)
        # What `tick` visits each second: the runs not closed, and the closed ones by
        # when they closed. A finished run is remembered for ten minutes (late spans),
        # so under load most runs are closed; scanning them all every second cost
        # ~0.7 µs each (130 ms a second at 200 000). Entries of runs forgotten since
        # (evicted for room, reopened) are dropped when met.
        self._open: dict[tuple[str, str], None] = {}
        self._closing: list[tuple[int, tuple[str, str]]] = []  # a heap of (closed at, run)
        self._gaps: dict[tuple[str, str], GapHistory] = {}
        self._instances: BoundedDict[tuple[str, str], int] = BoundedDict(50_000)
        self._thresholds: dict[tuple[str, str], float] = {}  # cached within one batch

    # -- input -----------------------------------------------------------------------

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        # Grouped per run and per process first: the bookkeeping then happens once
        # per run and per process, not once per span (this runs for every span).
        by_run: dict[tuple[str, str], list[AgentSpan]] = {}
        last_export: dict[tuple[str, str], int] = {}
        for span in spans:
            by_run.setdefault((span.tenant, span.trace_id), []).append(span)
            if span.service_instance_id:
                key = (span.tenant, span.service_instance_id)
                if span.end_ns > last_export.get(key, 0):
                    last_export[key] = span.end_ns
        for key, end_ns in last_export.items():
            self._instances[key] = max(self._instances.get(key, 0), end_ns)
        self._thresholds = {}  # cached for this batch only
        for run_key, run_spans in by_run.items():
            run = self._runs.get(run_key)
            if run is None:
                first = run_spans[0]
                run = self._runs[run_key] = _Run(first.tenant, first.trace_id, first.service_name)
                self._open[run_key] = None
            else:
                self._runs.touch(run_key)
            if len(run_spans) > 1:
                run_spans.sort(key=_end_time)
            applied = False
            for span in run_spans:
                applied = self._apply(run, span) or applied
            if applied and not run.open_spans and not run.closed_at_ns:
                self._close(run_key, run)
        self._thresholds = {}

    def _apply(self, run: _Run, span: AgentSpan) -> bool:
        """Update `run` with one span; False for a late span of a finished run."""
        if run.closed_at_ns:
            if span.end_ns <= run.closed_at_ns or span.span_id in run.ended:
                return False
            run.closed_at_ns = 0  # activity after the end: the run goes on (a new turn)
            self._open[(run.tenant, run.trace_id)] = None
        self._attribute(run, span)
        if span.marker == "pending":
            run.watched = True
            if span.pending_span_id and span.pending_span_id not in run.ended:
                run.open_spans[span.pending_span_id] = _OpenSpan(
                    span.pending_name, span.operation, span.tool_name, span.start_ns, True
                )
        elif span.marker == "heartbeat":
            run.watched = True
            run.last_heartbeat_ns = max(run.last_heartbeat_ns, span.end_ns)
            self._infer_running(run, span.parent_span_id, span.start_ns)
        else:
            run.open_spans.pop(span.span_id, None)
            run.ended[span.span_id] = None
            if len(run.ended) > _MAX_ENDED_PER_RUN:
                del run.ended[next(iter(run.ended))]
            if span.operation == _AGENT_ROOT:
                run.watched = True
            elif span.operation:
                self._infer_running(run, span.parent_span_id, span.start_ns)
        # A step that ran the whole silent gap and ended well was slow, not stuck: its
        # gap is learnt even when it exceeded the threshold (see _activity).
        slow_step = bool(span.operation) and not span.marker and not span.is_error
        self._activity(run, span.end_ns, slow_step and span.start_ns <= run.last_activity_ns)
        return True

    @staticmethod
    def _infer_running(run: _Run, span_id: str, start_ns: int) -> None:
        if span_id and span_id not in run.ended and span_id not in run.open_spans:
            run.open_spans[span_id] = _OpenSpan("", "", "", start_ns, False)

    @staticmethod
    def _attribute(run: _Run, span: AgentSpan) -> None:
        """The run's agent: from its agent span when known, else any span's own."""
        if span.operation == _AGENT_ROOT and not run.agent_from_root:
            run.agent_name, run.run_id, run.agent_from_root = span.agent_name, span.run_id, True
        elif not run.agent_from_root and (not run.agent_name or run.agent_name == run.service_name):
            run.agent_name, run.run_id = span.agent_name, span.run_id
        if span.service_instance_id:
            run.instance_id = span.service_instance_id

    def _activity(self, run: _Run, at_ns: int, slow_step: bool = False) -> None:
        """Record activity at `at_ns`; learn the gap before it.

        Gaps under the threshold are learnt. A longer one is learnt only when it ends
        with a step that ran through it and succeeded (`slow_step`), capped at
        `critical_after` x the threshold; a stall that ends any other way (a timeout,
        an error, a resumed loop) was an incident, and learning it would hide the next.
        """
        if at_ns <= run.last_activity_ns:
            return
        if run.last_activity_ns:
            gap_s = (at_ns - run.last_activity_ns) / NS
            agent_key = (run.tenant, run.agent_name)
            threshold_s = self._thresholds.get(agent_key)
            if threshold_s is None:
                threshold_s = self._thresholds[agent_key] = self.threshold_s(*agent_key)
            if gap_s < threshold_s or slow_step:
                cap_s = self._settings(run.agent_name).critical_after * threshold_s
                self._gap_history(run.tenant, run.agent_name).add(min(gap_s, cap_s))
        run.last_activity_ns = at_ns
        if run.finding is not None and not run.finding.resolved_at_ns:
            # The activity that ends the stall may be the run's end (its last open span
            # arrived, e.g. the agent span): then the run ended rather than resumed.
            if not run.open_spans:
                resolve_finding(self._sink, run.finding, now_ns=at_ns, reason="run ended")
            else:
                resolve_finding(
                    self._sink,
                    run.finding,
                    now_ns=at_ns,
                    reason="activity resumed",
                    resumed_at=iso(at_ns),
                )
            run.finding = None

    def _close(self, key: tuple[str, str], run: _Run) -> None:
        run.closed_at_ns = max(run.last_activity_ns, 1)
        self._open.pop(key, None)
        if run.finding is not None:
            resolve_finding(self._sink, run.finding, now_ns=run.closed_at_ns, reason="run ended")
            run.finding = None
        if not run.watched:
            del self._runs[key]  # not an agent run: nothing to remember
            return
        heapq.heappush(self._closing, (run.closed_at_ns, key))
        if len(self._closing) > 2 * self._runs.capacity:
            self._index_closed()  # mostly entries of runs evicted since: start over

    # -- time ------------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        closing = self._closing
        while closing and now_ns - closing[0][0] > _RETAIN_CLOSED_NS:
            closed_at_ns, key = heapq.heappop(closing)
            run = self._runs.get(key)
            if run is not None and run.closed_at_ns == closed_at_ns:
                del self._runs[key]
        forgotten = []
        for key in list(self._open):
            run = self._runs.get(key)
            if run is None or run.closed_at_ns:
                del self._open[key]  # evicted for room, or closed
                continue
            if not run.watched:
                # Not (yet) an agent run: kept only while its steps' parents may still
                # arrive. Forgotten soon, so such traces cannot crowd out real runs.
                if now_ns - run.last_activity_ns > _RETAIN_CLOSED_NS:
                    forgotten.append(key)
                continue
            settings = self._settings(run.agent_name)
            if not settings.enabled:
                continue
            idle_s = (now_ns - run.last_activity_ns) / NS
            if idle_s >= settings.forget_after:
                if run.finding is not None:
                    resolve_finding(self._sink, run.finding, now_ns=now_ns, reason="expired")
                forgotten.append(key)
                continue
            threshold_s = self.threshold_s(run.tenant, run.agent_name)
            if idle_s >= threshold_s:
                self._report(run, now_ns, idle_s, threshold_s, settings)
        for key in forgotten:
            del self._runs[key]
            del self._open[key]

    def _index_closed(self) -> None:
        self._closing = [
            (run.closed_at_ns, key) for key, run in self._runs.items() if run.closed_at_ns
        ]
        heapq.heapify(self._closing)

    def threshold_s(self, tenant: str, agent_name: str) -> float:
        settings = self._settings(agent_name)
        if settings.idle is not None:
            return settings.idle
        gaps = self._gaps.get((tenant, agent_name))
        if gaps is None or len(gaps) < settings.min_gap_samples:
            return settings.min_idle
        return max(
            settings.min_idle, settings.idle_multiplier * gaps.quantile(settings.idle_quantile)
        )

    def _report(
        self, run: _Run, now_ns: int, idle_s: float, threshold_s: float, settings: ZombieRunConfig
    ) -> None:
        severity: Severity = (
            "critical" if idle_s >= settings.critical_after * threshold_s else "error"
        )
        stuck = self._stuck_span(run)
        if run.finding is not None:
            if run.finding.severity != severity:
                update_finding(
                    self._sink,
                    run.finding,
                    now_ns=now_ns,
                    severity=severity,
                    summary=self._summary(run, stuck, now_ns, idle_s),
                    evidence=self._evidence(run, now_ns, idle_s, threshold_s),
                )
            return
        run.finding = open_finding(
            self._sink,
            kind=KIND,
            tenant=run.tenant,
            incident=f"{run.trace_id}:{run.last_activity_ns}",
            severity=severity,
            summary=self._summary(run, stuck, now_ns, idle_s),
            now_ns=now_ns,
            evidence=self._evidence(run, now_ns, idle_s, threshold_s),
            agent_name=run.agent_name,
            service_name=run.service_name,
            tool_name=stuck[1].tool_name if stuck else "",
            trace_id=run.trace_id,
            run_id=run.run_id,
        )

    @staticmethod
    def _stuck_span(run: _Run) -> tuple[str, _OpenSpan] | None:
        """The innermost running step: the latest-started announced span, else any."""
        if not run.open_spans:
            return None
        return max(run.open_spans.items(), key=lambda item: (item[1].announced, item[1].start_ns))

    def _process_alive(self, run: _Run, now_ns: int) -> tuple[bool, int]:
        """Whether the run's process still exports other telemetry, and when it last did."""
        last = self._instances.get((run.tenant, run.instance_id), 0) if run.instance_id else 0
        alive = last > run.last_activity_ns and (now_ns - last) < (now_ns - run.last_activity_ns)
        return alive, last

    def _summary(
        self, run: _Run, stuck: tuple[str, _OpenSpan] | None, now_ns: int, idle_s: float
    ) -> str:
        where = "no progress"
        if stuck is not None:
            span_id, step = stuck
            what = " ".join(part for part in (step.operation, step.tool_name) if part)
            label = what or step.name or "a step"
            if step.name and what and step.name not in what:
                label = f"{what} ({step.name})"
            running = human_duration((now_ns - step.start_ns) / NS)
            where = f"stuck in {label} for {running} (span {span_id})"
        text = (
            f"{run.agent_name}: run {run.run_id} {where}; no activity for {human_duration(idle_s)}"
        )
        alive, _ = self._process_alive(run, now_ns)
        if alive:
            text += f"; its process ({run.instance_id}) is still exporting telemetry"
        if run.last_heartbeat_ns:
            text += "; heartbeats from inside the loop stopped"
        return text

    def _evidence(
        self, run: _Run, now_ns: int, idle_s: float, threshold_s: float
    ) -> dict[str, Any]:
        alive, process_last = self._process_alive(run, now_ns)
        open_spans = sorted(run.open_spans.items(), key=lambda item: -item[1].start_ns)[:10]
        stuck = self._stuck_span(run)
        evidence: dict[str, Any] = {
            "trace_id": run.trace_id,
            "run_id": run.run_id,
            "idle_s": round(idle_s, 3),
            "threshold_s": round(threshold_s, 3),
            "last_activity_at": iso(run.last_activity_ns),
            "span_ids": [span_id for span_id, _ in open_spans],
            "open_spans": [
                {
                    "span_id": span_id,
                    "name": step.name,
                    "operation": step.operation,
                    "tool_name": step.tool_name,
                    "started_at": iso(step.start_ns),
                    "running_s": round((now_ns - step.start_ns) / NS, 3),
                    "announced": step.announced,
                }
                for span_id, step in open_spans
            ],
            "heartbeats": {
                "seen": bool(run.last_heartbeat_ns),
                "last_at": iso(run.last_heartbeat_ns) if run.last_heartbeat_ns else None,
            },
            "process": {
                "service_instance_id": run.instance_id,
                "still_exporting": alive,
                "last_export_at": iso(process_last) if process_last else None,
            },
        }
        if stuck is not None:
            evidence["stuck_span_id"] = stuck[0]
        return evidence

    # -- helpers ---------------------------------------------------------------------

    def _settings(self, agent_name: str) -> ZombieRunConfig:
        return self._config.for_agent(agent_name).zombie_run

    def _gap_history(self, tenant: str, agent_name: str) -> GapHistory:
        key = (tenant, agent_name)
        history = self._gaps.get(key)
        if history is None:
            history = self._gaps[key] = GapHistory()
        return history

    # -- persistence -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "runs": [_run_to_dict(run) for run in self._runs.values() if run.watched],
            "gaps": [[t, a, g.to_list()] for (t, a), g in self._gaps.items()],
            "instances": [[t, i, at] for (t, i), at in self._instances.items()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        for data in state.get("runs", []):
            run = _run_from_dict(data)
            self._runs[(run.tenant, run.trace_id)] = run
        self._open = {key: None for key, run in self._runs.items() if not run.closed_at_ns}
        self._index_closed()
        for tenant, agent, gaps in state.get("gaps", []):
            self._gaps[(tenant, agent)] = GapHistory(gaps=gaps)
        for tenant, instance, at in state.get("instances", []):
            self._instances[(tenant, instance)] = at


def _end_time(span: AgentSpan) -> int:
    return span.end_ns


def _run_to_dict(run: _Run) -> dict[str, Any]:
    return {
        "tenant": run.tenant,
        "trace_id": run.trace_id,
        "service_name": run.service_name,
        "instance_id": run.instance_id,
        "agent_name": run.agent_name,
        "agent_from_root": run.agent_from_root,
        "run_id": run.run_id,
        "watched": run.watched,
        "last_activity_ns": run.last_activity_ns,
        "last_heartbeat_ns": run.last_heartbeat_ns,
        "closed_at_ns": run.closed_at_ns,
        "open_spans": {
            span_id: [s.name, s.operation, s.tool_name, s.start_ns, s.announced]
            for span_id, s in run.open_spans.items()
        },
        "ended": list(run.ended),
        "finding": run.finding.as_dict() if run.finding else None,
    }


def _run_from_dict(data: dict[str, Any]) -> _Run:
    finding = data.pop("finding")
    open_spans = data.pop("open_spans")
    ended = data.pop("ended")
    run = _Run(**data)
    run.open_spans = {span_id: _OpenSpan(*values) for span_id, values in open_spans.items()}
    run.ended = dict.fromkeys(ended)
    run.finding = Finding.from_dict(finding) if finding else None
    return run

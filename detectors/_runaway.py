"""runaway_loop: a run that repeats itself instead of making progress.

Within one run (one trace), any of:

- the same tool with the same arguments hash `max_repeats` times (default 3);
- a short cycle — a block of 2 or 3 tool calls (tool + arguments) with at least two
  different calls, A→B→A→B… — repeated `max_cycle_repeats` times in a row;
- more than `max_steps` LLM and tool calls, or more than `max_tokens` tokens.

It fires while the loop is happening (as the repeated calls arrive), names the
repeated call or sequence, the count, and the tokens and time burned so far; it is
updated as the loop goes on (each time the count doubles) and resolves when the run
ends or makes no new step for `quiet`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors._common import NS, BoundedDict, human_duration, iso
from detectors._config import DetectorConfig, RunawayLoopConfig
from detectors._findings import (
    Finding,
    FindingSink,
    Severity,
    open_finding,
    resolve_finding,
    update_finding,
)
from ingest import AgentSpan

KIND = "runaway_loop"
_STEP_OPERATIONS = frozenset(
    {"execute_tool", "chat", "text_completion", "generate_content", "embeddings", "retrieval"}
)
_TAIL = 64  # the recent tool calls kept per run, for cycle detection
_MAX_CALL_KINDS = 2048  # distinct (tool, arguments) pairs counted per run


@dataclass(slots=True)
class _Call:
    count: int = 0
    first_ns: int = 0
    span_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Run:
    tenant: str
    trace_id: str
    agent_name: str
    service_name: str
    run_id: str
    first_step_ns: int = 0
    last_step_ns: int = 0
    steps: int = 0
    tokens: int = 0
    calls: dict[str, _Call] = field(default_factory=dict)  # "tool\x00args hash" -> count
    tail: list[tuple[int, str]] = field(default_factory=list)  # (start, call), by start
    finding: Finding | None = None
    reported_count: int = 0
    named: bool = False  # agent and run taken from an agent span
    ended: bool = False


class RunawayLoopDetector:
    kind = KIND

    def __init__(self, config: DetectorConfig, sink: FindingSink, max_runs: int = 100_000):
        self._config = config
        self._sink = sink
        self._runs: BoundedDict[tuple[str, str], _Run] = BoundedDict(max_runs)
        # Runs already finished: their late spans must not start a second incident.
        self._finished: BoundedDict[tuple[str, str], int] = BoundedDict(max_runs)
        # Per trace: (agent, run id, start, parentless) of its outermost agent span.
        self._agents: BoundedDict[tuple[str, str], tuple[str, str, int, bool]] = BoundedDict(
            max_runs
        )

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        by_run: dict[tuple[str, str], list[AgentSpan]] = {}
        for span in spans:
            if span.operation == "invoke_agent":
                self._note_agent((span.tenant, span.trace_id), span)
            if not span.is_marker:
                by_run.setdefault((span.tenant, span.trace_id), []).append(span)
        for key, run_spans in by_run.items():
            run = self._runs.get(key)
            if run is None:
                first_step = next((s for s in run_spans if _is_step(s)), None)
                if first_step is None or key in self._finished:
                    continue
                run = self._runs[key] = _Run(
                    first_step.tenant,
                    first_step.trace_id,
                    first_step.agent_name,
                    first_step.service_name,
                    first_step.run_id,
                )
            self._name(key, run)
            for span in run_spans:
                if _is_step(span):
                    self._add_step(run, span)
            # After the steps: whether an agent span ends the run depends on them.
            run.ended = run.ended or any(self._ends_run(key, run, span) for span in run_spans)
            at_ns = max(span.end_ns for span in run_spans)
            # Checked even when the run ended in this batch: a loop whose spans arrive
            # together with the run's end is still reported (opened, then resolved).
            self._check(run, at_ns)
            if run.ended:
                self._finish(key, run, at_ns, "run ended")

    def _note_agent(self, key: tuple[str, str], span: AgentSpan) -> None:
        """Remember the trace's outermost agent span (ended or announced by a marker).

        Steps rarely name their agent, and the agent span is exported last; its pending
        marker (agentwatch_sdk) names the agent and the conversation while the run goes.
        """
        known = self._agents.get(key)
        candidate = (not span.parent_span_id, -span.start_ns)
        if known is None or candidate > (known[3], -known[2]):
            self._agents[key] = (span.agent_name, span.run_id, span.start_ns, candidate[0])

    def _name(self, key: tuple[str, str], run: _Run) -> None:
        known = self._agents.get(key)
        if known is not None:
            run.agent_name, run.run_id = known[0], known[1]
            run.named = True

    def _ends_run(self, key: tuple[str, str], run: _Run, span: AgentSpan) -> bool:
        """The trace's root ended, or its outermost agent span (whose parent, a caller's
        span, agentwatch may never receive) — not a sub-agent inside the run."""
        if not span.parent_span_id:
            return True
        if span.operation != "invoke_agent":
            return False
        known = self._agents.get(key)
        outermost = known is None or span.start_ns <= known[2]
        return outermost and (not run.first_step_ns or span.start_ns <= run.first_step_ns)

    def _add_step(self, run: _Run, span: AgentSpan) -> None:
        run.steps += 1
        run.tokens += span.input_tokens + span.output_tokens
        if not run.first_step_ns or span.start_ns < run.first_step_ns:
            run.first_step_ns = span.start_ns
        run.last_step_ns = max(run.last_step_ns, span.end_ns)
        if not span.tool_name:
            return
        signature = f"{span.tool_name}\x00{span.tool_args_hash}"
        call = run.calls.get(signature)
        if call is None:
            if len(run.calls) >= _MAX_CALL_KINDS:
                return
            call = run.calls[signature] = _Call(first_ns=span.start_ns)
        call.count += 1
        call.first_ns = min(call.first_ns, span.start_ns)
        if len(call.span_ids) < 10:
            call.span_ids.append(span.span_id)
        bisect.insort(run.tail, (span.start_ns, signature))
        if len(run.tail) > _TAIL:
            del run.tail[0]

    def _check(self, run: _Run, now_ns: int) -> None:
        settings = self._settings(run.agent_name)
        if not settings.enabled:
            return
        verdict = _verdict(run, settings)
        if verdict is None:
            return
        reason, count, evidence = verdict
        trigger = {
            "repeated_call": settings.max_repeats,
            "cycle": settings.max_cycle_repeats,
            "step_budget": settings.max_steps,
            "token_budget": settings.max_tokens,
        }[reason]
        # Critical far past the threshold, whatever batches the calls arrived in.
        severity: Severity = "critical" if count >= 4 * trigger else "error"
        evidence.update(
            trace_id=run.trace_id,
            run_id=run.run_id,
            steps=run.steps,
            tokens=run.tokens,
            running_s=round((run.last_step_ns - run.first_step_ns) / NS, 3),
            first_step_at=iso(run.first_step_ns),
        )
        summary = (
            f"{run.agent_name}: run {run.run_id} {evidence['description']}; "
            f"{run.steps} steps, {run.tokens} tokens, "
            f"{human_duration((run.last_step_ns - run.first_step_ns) / NS)} so far"
        )
        if run.finding is None:
            run.finding = open_finding(
                self._sink,
                kind=KIND,
                tenant=run.tenant,
                incident=f"{run.trace_id}:{reason}",
                severity=severity,
                summary=summary,
                now_ns=now_ns,
                evidence=evidence,
                agent_name=run.agent_name,
                service_name=run.service_name,
                tool_name=evidence.get("tool_name", ""),
                trace_id=run.trace_id,
                run_id=run.run_id,
            )
            run.reported_count = count
        elif (
            count >= 2 * run.reported_count
            or (run.finding.agent_name, run.finding.run_id) != (run.agent_name, run.run_id)
            or severity != run.finding.severity
            # Streamed, a cycle's first call reaches max_repeats one call before the
            # cycle completes: name the cycle when it does, though the count did not double.
            or (reason == "cycle" and run.finding.evidence.get("reason") != "cycle")
        ):
            run.finding.agent_name, run.finding.run_id = run.agent_name, run.run_id
            update_finding(
                self._sink,
                run.finding,
                now_ns=now_ns,
                summary=summary,
                evidence=evidence,
                severity=severity,
            )
            run.reported_count = count

    def _finish(self, key: tuple[str, str], run: _Run, now_ns: int, reason: str) -> None:
        if run.finding is not None:
            resolve_finding(self._sink, run.finding, now_ns=now_ns, reason=reason)
        del self._runs[key]
        self._finished[key] = now_ns

    def tick(self, now_ns: int) -> None:
        quiet = [
            (key, run)
            for key, run in self._runs.items()
            if now_ns - run.last_step_ns > self._settings(run.agent_name).quiet * NS
        ]
        for key, run in quiet:
            self._finish(key, run, now_ns, "no new step")

    def _settings(self, agent_name: str) -> RunawayLoopConfig:
        return self._config.for_agent(agent_name).runaway_loop

    # -- persistence -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "runs": [_run_to_dict(run) for run in self._runs.values()],
            "agents": [[t, trace, *seen] for (t, trace), seen in self._agents.items()],
            "finished": [
                [tenant, trace_id, at] for (tenant, trace_id), at in self._finished.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        for data in state.get("runs", []):
            run = _run_from_dict(data)
            self._runs[(run.tenant, run.trace_id)] = run
        for tenant, trace_id, agent, run_id, start, parentless in state.get("agents", []):
            self._agents[(tenant, trace_id)] = (agent, run_id, start, parentless)
        for tenant, trace_id, at in state.get("finished", []):
            self._finished[(tenant, trace_id)] = at


def _is_step(span: AgentSpan) -> bool:
    return span.operation in _STEP_OPERATIONS or bool(span.tool_name)


def _verdict(run: _Run, settings: RunawayLoopConfig) -> tuple[str, int, dict[str, Any]] | None:
    """(reason, count, evidence) of the strongest loop signal in `run`, if any."""
    # A cycle first: its calls are repeated calls too (as often as the cycle), and with
    # max_cycle_repeats <= max_repeats (the defaults) it would otherwise never be named.
    cycle = _repeated_cycle([signature for _, signature in run.tail], settings.max_cycle_repeats)
    if cycle is not None:
        block, repeats = cycle
        tools = [signature.split("\x00", 1)[0] for signature in block]
        return (
            "cycle",
            repeats,
            {
                "reason": "cycle",
                "description": f"cycled {' → '.join(tools)} {repeats}x",
                "tool_name": tools[0],
                "sequence": tools,
                "count": repeats,
            },
        )
    if run.calls:
        signature, call = max(run.calls.items(), key=lambda item: item[1].count)
        if call.count >= settings.max_repeats:
            tool, args_hash = signature.split("\x00", 1)
            return (
                "repeated_call",
                call.count,
                {
                    "reason": "repeated_call",
                    "description": f"called {tool} {call.count}x with the same arguments",
                    "tool_name": tool,
                    "arguments_hash": args_hash,
                    "count": call.count,
                    "span_ids": list(call.span_ids),
                },
            )
    if run.steps > settings.max_steps:
        return (
            "step_budget",
            run.steps,
            {
                "reason": "step_budget",
                "description": f"took {run.steps} steps (budget {settings.max_steps})",
                "count": run.steps,
            },
        )
    if run.tokens > settings.max_tokens:
        return (
            "token_budget",
            run.tokens,
            {
                "reason": "token_budget",
                "description": f"used {run.tokens} tokens (budget {settings.max_tokens})",
                "count": run.tokens,
            },
        )
    return None


def _repeated_cycle(calls: list[str], min_repeats: int) -> tuple[list[str], int] | None:
    """The block of 2-3 calls that the tail of `calls` repeats most, if ≥ min_repeats."""
    best: tuple[list[str], int] | None = None
    for period in (2, 3):
        block = calls[-period:]
        if len(block) < period or len(set(block)) < 2:
            continue
        repeats = 1
        while calls[-period * (repeats + 1) : len(calls) - period * repeats] == block:
            repeats += 1
        if repeats >= min_repeats and (best is None or repeats > best[1]):
            best = (block, repeats)
    return best


def _run_to_dict(run: _Run) -> dict[str, Any]:
    return {
        "tenant": run.tenant,
        "trace_id": run.trace_id,
        "agent_name": run.agent_name,
        "service_name": run.service_name,
        "run_id": run.run_id,
        "first_step_ns": run.first_step_ns,
        "last_step_ns": run.last_step_ns,
        "steps": run.steps,
        "tokens": run.tokens,
        "calls": {k: [c.count, c.first_ns, c.span_ids] for k, c in run.calls.items()},
        "tail": run.tail,
        "finding": run.finding.as_dict() if run.finding else None,
        "reported_count": run.reported_count,
        "named": run.named,
    }


def _run_from_dict(data: dict[str, Any]) -> _Run:
    finding = data.pop("finding")
    calls = data.pop("calls")
    tail = data.pop("tail")
    run = _Run(**data)
    run.calls = {k: _Call(*values) for k, values in calls.items()}
    run.tail = [(start, signature) for start, signature in tail]
    run.finding = Finding.from_dict(finding) if finding else None
    return run

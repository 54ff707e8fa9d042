"""change_point: what changed under an agent — its model, its tools, a tool's schema.

Quality drifts after something changes: a vendor swaps the model, a tool appears, a
tool's arguments change shape. Each is recorded as an `info` finding, per agent, once
the change is confirmed, so drift findings (and people) can point at a likely cause:

- `model`: the agent's LLM calls move to a response model (or provider) it had not
  used in at least `min_calls` calls before;
- `tool_added`: the agent calls a tool it had not called in `min_calls` tool calls;
- `tool_removed`: an established tool stops being called: at the share of runs the
  agent used it in, a gap of that many runs without it should not have happened even
  once among its gaps so far (runs_with_it * (1 - share) ^ runs_since < `max_p_value`,
  and at least `min_calls` runs). Counted in runs, not calls, so one run looping on
  one tool does not hide the others;
- `tool_schema`: a tool's arguments (JSON object keys of `gen_ai.tool.call.arguments`,
  or of `input.value` on OpenInference TOOL spans) take a key set not seen before.

Each is confirmed after `confirm_calls` calls of the new value, and only if it is new
rather than rare: at the rate it is used since it appeared, the earlier calls would
almost surely have included it ((1 - rate) ^ calls_before < `max_p_value`).

A change point is an event: it opens when confirmed and resolves by itself after
`settle` (the change is then the agent's new normal).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from detectors._common import LLM_OPERATIONS, NS, BoundedDict, iso
from detectors._config import ChangePointConfig, DetectorConfig
from detectors._findings import Finding, FindingSink, open_finding, resolve_finding
from ingest import AgentSpan

KIND = "change_point"
_ARGUMENT_KEYS = ("gen_ai.tool.call.arguments", "input.value")
_MAX_VALUES = 64  # distinct models / tools / schemas remembered per agent
_HISTORY = 10  # change points kept per agent as likely causes of drift


@dataclass(slots=True)
class _Agent:
    tenant: str
    agent_name: str
    service_name: str
    llm_calls: int = 0
    tool_calls: int = 0
    models: Counter[str] = field(default_factory=Counter)  # "provider/model" -> calls
    tools: Counter[str] = field(default_factory=Counter)
    schemas: dict[str, Counter[str]] = field(default_factory=dict)  # tool -> key set -> n
    tool_schema_calls: Counter[str] = field(default_factory=Counter)
    # When each value was first seen (the agent's call number then).
    model_first: dict[str, int] = field(default_factory=dict)
    tool_first: dict[str, int] = field(default_factory=dict)
    # Runs with tool calls (distinct run ids among the recent ones), and per tool: the
    # runs it was called in, and its last call (run number, end time, trace id).
    runs: int = 0
    recent_runs: BoundedDict[str, None] = field(default_factory=lambda: BoundedDict(1024))
    tool_runs: Counter[str] = field(default_factory=Counter)
    tool_first_run: dict[str, int] = field(default_factory=dict)
    tool_last: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    removal_checked_at: int = 0  # runs at the last removal check
    schema_first: dict[str, dict[str, int]] = field(default_factory=dict)
    reported: set[str] = field(default_factory=set)  # incidents already reported
    open: list[Finding] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # the last few, for causes


class ChangePointDetector:
    kind = KIND

    def __init__(self, config: DetectorConfig, sink: FindingSink, max_agents: int = 10_000):
        self._config = config
        self._sink = sink
        self._agents: BoundedDict[tuple[str, str], _Agent] = BoundedDict(max_agents)

    def extra_keys(self) -> tuple[str, ...]:
        return _ARGUMENT_KEYS

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        settings_of: dict[str, ChangePointConfig] = {}  # per agent, for this batch
        for span in sorted(spans, key=_end_time):
            if span.marker or not span.agent_name:
                continue
            settings = settings_of.get(span.agent_name)
            if settings is None:
                settings = settings_of[span.agent_name] = self._settings(span.agent_name)
            if not settings.enabled:
                continue
            key = (span.tenant, span.agent_name)
            agent = self._agents.get(key)
            if agent is None:
                agent = self._agents[key] = _Agent(span.tenant, span.agent_name, span.service_name)
            if span.operation in LLM_OPERATIONS and span.model:
                self._model_call(agent, span, settings)
            elif span.tool_name and span.operation != "invoke_agent":
                self._tool_call(agent, span, settings)

    def _model_call(self, agent: _Agent, span: AgentSpan, settings: ChangePointConfig) -> None:
        model = f"{span.provider}/{span.model}" if span.provider else span.model
        agent.llm_calls += 1
        if self._new_value(agent.models, agent.model_first, model, agent.llm_calls, settings):
            before = max((m for m in agent.models if m != model), key=agent.models.__getitem__)
            self._report(
                agent,
                settings,
                now_ns=span.end_ns,
                trace_id=span.trace_id,
                change="model",
                incident=f"model\x00{model}",
                summary=f"{agent.agent_name}: model changed from {before} to {model}",
                evidence={"from": before, "to": model, "calls_before": agent.models[before]},
            )

    def _tool_call(self, agent: _Agent, span: AgentSpan, settings: ChangePointConfig) -> None:
        tool = span.tool_name
        agent.tool_calls += 1
        if span.run_id not in agent.recent_runs:
            agent.runs += 1
        agent.recent_runs[span.run_id] = None
        if tool in agent.tools or len(agent.tools) < _MAX_VALUES:
            last = agent.tool_last.get(tool)
            if last is None or last[0] != agent.runs:
                agent.tool_runs[tool] += 1
            agent.tool_first_run.setdefault(tool, agent.runs)
            agent.tool_last[tool] = (agent.runs, span.end_ns, span.trace_id)
            if agent.reported:
                agent.reported.discard(f"tool_removed\x00{tool}")  # back: it may go again
        if self._new_value(agent.tools, agent.tool_first, tool, agent.tool_calls, settings):
            self._report(
                agent,
                settings,
                now_ns=span.end_ns,
                trace_id=span.trace_id,
                change="tool_added",
                incident=f"tool\x00{tool}",
                summary=f"{agent.agent_name}: started calling a new tool, {tool}",
                evidence={"tool_name": tool, "tools_before": sorted(set(agent.tools) - {tool})},
            )
        schema = _argument_keys(span)
        if schema is None:
            return
        seen = agent.schemas.get(tool)
        if seen is None:
            seen = agent.schemas[tool] = Counter()
        first = agent.schema_first.get(tool)
        if first is None:
            first = agent.schema_first[tool] = {}
        agent.tool_schema_calls[tool] += 1
        if self._new_value(seen, first, schema, agent.tool_schema_calls[tool], settings):
            before = max((s for s in seen if s != schema), key=seen.__getitem__)
            self._report(
                agent,
                settings,
                now_ns=span.end_ns,
                trace_id=span.trace_id,
                change="tool_schema",
                incident=f"schema\x00{tool}\x00{schema}",
                summary=(
                    f"{agent.agent_name}: {tool} arguments changed from [{before}] to [{schema}]"
                ),
                evidence={
                    "tool_name": tool,
                    "from_keys": before.split(",") if before else [],
                    "to_keys": schema.split(",") if schema else [],
                },
            )

    @staticmethod
    def _new_value(
        counts: Counter[str],
        first_seen: dict[str, int],
        value: str,
        call_number: int,
        settings: ChangePointConfig,
    ) -> bool:
        """Count one call of `value`; True once it is confirmed as *new*.

        New, not merely rare: at the rate it has been used since it first appeared,
        the calls before that would almost surely have included it
        ((1 - rate) ^ calls_before < max_p_value). A rarely used tool or an optional
        argument showing up late is not a change.
        """
        if value not in counts and len(counts) >= _MAX_VALUES:
            return False
        counts[value] += 1
        first = first_seen.setdefault(value, call_number)
        calls_before = first - 1
        if calls_before < settings.min_calls or counts[value] < settings.confirm_calls:
            return False
        if len(counts) < 2 or counts[value] > 4 * settings.confirm_calls:
            return False  # long past its confirmation: an old value by now
        rate = (counts[value] - 1) / max(1, call_number - first)  # the first call is given
        return bool((1 - min(rate, 1.0)) ** calls_before < settings.max_p_value)

    def _check_removed_tools(self, agent: _Agent, now_ns: int) -> None:
        """Report tools the agent stopped calling (see the module docstring)."""
        if agent.runs == agent.removal_checked_at:
            return
        agent.removal_checked_at = agent.runs
        settings = self._settings(agent.agent_name)
        for tool, (last_run, last_ns, trace_id) in list(agent.tool_last.items()):
            runs_since = agent.runs - last_run
            lifetime = last_run - agent.tool_first_run.get(tool, last_run) + 1
            used = agent.tool_runs[tool]
            if (
                runs_since < settings.min_calls
                or lifetime < settings.min_calls
                or used < settings.confirm_calls
            ):
                continue
            share = used / lifetime
            # Each run with the tool ended a gap; over that many gaps, one this long
            # should have been expected less than max_p_value times (watching a stream
            # forever, a per-gap test alone would fire on chance gaps).
            if used * (1 - min(share, 1.0)) ** runs_since >= settings.max_p_value:
                continue
            self._report(
                agent,
                settings,
                now_ns=now_ns,
                trace_id=trace_id,
                change="tool_removed",
                incident=f"tool_removed\x00{tool}",
                summary=f"{agent.agent_name}: stopped calling {tool}",
                evidence={
                    "tool_name": tool,
                    "runs_before": used,
                    "share_of_runs": round(share, 4),
                    "runs_since": runs_since,
                    "last_called_at": iso(last_ns),
                },
            )

    def _report(
        self,
        agent: _Agent,
        settings: ChangePointConfig,
        *,
        now_ns: int,
        trace_id: str,
        change: str,
        incident: str,
        summary: str,
        evidence: dict[str, Any],
    ) -> None:
        if incident in agent.reported:
            return
        agent.reported.add(incident)
        finding = open_finding(
            self._sink,
            kind=KIND,
            tenant=agent.tenant,
            incident=f"{agent.agent_name}\x00{incident}",
            severity="info",
            summary=summary,
            now_ns=now_ns,
            evidence={
                "change": change,
                **evidence,
                "first_seen_at": iso(now_ns),
                "example_trace_id": trace_id,
                "settles_after_s": settings.settle,
            },
            agent_name=agent.agent_name,
            service_name=agent.service_name,
            tool_name=str(evidence.get("tool_name", "")),
            trace_id=trace_id,
        )
        agent.open.append(finding)
        agent.history.append({"id": finding.id, "summary": summary, "at_ns": now_ns})
        del agent.history[:-_HISTORY]

    def recent_changes(self, tenant: str, agent_name: str, since_ns: int) -> list[dict[str, Any]]:
        """The agent's change points since `since_ns`, oldest first (drift's likely causes)."""
        agent = self._agents.get((tenant, agent_name))
        if agent is None:
            return []
        return [
            {"id": c["id"], "summary": c["summary"], "at": iso(c["at_ns"])}
            for c in agent.history
            if c["at_ns"] >= since_ns
        ]

    def tick(self, now_ns: int) -> None:
        for agent in self._agents.values():
            if self._settings(agent.agent_name).enabled:
                self._check_removed_tools(agent, now_ns)
            if not agent.open:
                continue
            settle_ns = self._settings(agent.agent_name).settle * NS
            keep = []
            for finding in agent.open:
                if now_ns - finding.opened_at_ns >= settle_ns:
                    resolve_finding(self._sink, finding, now_ns=now_ns, reason="settled")
                else:
                    keep.append(finding)
            agent.open = keep

    def _settings(self, agent_name: str) -> ChangePointConfig:
        return self._config.for_agent(agent_name).change_point

    def snapshot(self) -> dict[str, Any]:
        return {
            "agents": [
                {
                    "tenant": a.tenant,
                    "agent_name": a.agent_name,
                    "service_name": a.service_name,
                    "llm_calls": a.llm_calls,
                    "tool_calls": a.tool_calls,
                    "models": dict(a.models),
                    "tools": dict(a.tools),
                    "schemas": {tool: dict(c) for tool, c in a.schemas.items()},
                    "tool_schema_calls": dict(a.tool_schema_calls),
                    "model_first": a.model_first,
                    "tool_first": a.tool_first,
                    "runs": a.runs,
                    "recent_runs": list(a.recent_runs),
                    "tool_runs": dict(a.tool_runs),
                    "tool_first_run": a.tool_first_run,
                    "tool_last": a.tool_last,
                    "removal_checked_at": a.removal_checked_at,
                    "schema_first": a.schema_first,
                    "reported": sorted(a.reported),
                    "open": [f.as_dict() for f in a.open],
                    "history": a.history,
                }
                for a in self._agents.values()
            ]
        }

    def restore(self, state: dict[str, Any]) -> None:
        for data in state.get("agents", []):
            agent = _Agent(data["tenant"], data["agent_name"], data["service_name"])
            agent.llm_calls, agent.tool_calls = data["llm_calls"], data["tool_calls"]
            agent.models = Counter(data["models"])
            agent.tools = Counter(data["tools"])
            agent.schemas = {tool: Counter(c) for tool, c in data["schemas"].items()}
            agent.tool_schema_calls = Counter(data["tool_schema_calls"])
            agent.model_first = dict(data["model_first"])
            agent.tool_first = dict(data["tool_first"])
            agent.tool_last = {
                tool: (call, at_ns, trace_id)
                for tool, (call, at_ns, trace_id) in data.get("tool_last", {}).items()
            }
            agent.removal_checked_at = data.get("removal_checked_at", 0)
            agent.runs = data.get("runs", 0)
            for run_id in data.get("recent_runs", []):
                agent.recent_runs[run_id] = None
            agent.tool_runs = Counter(data.get("tool_runs", {}))
            agent.tool_first_run = dict(data.get("tool_first_run", {}))
            agent.schema_first = {t: dict(f) for t, f in data["schema_first"].items()}
            agent.reported = set(data["reported"])
            agent.open = [Finding.from_dict(f) for f in data["open"]]
            agent.history = list(data.get("history", []))
            self._agents[(agent.tenant, agent.agent_name)] = agent


def _end_time(span: AgentSpan) -> int:
    return span.end_ns


def _argument_keys(span: AgentSpan) -> str | None:
    """The sorted top-level keys of the call's JSON arguments ("a,b"); None if unknown."""
    text = span.attributes.get(_ARGUMENT_KEYS[0])
    if text is None and span.operation == "execute_tool":
        text = span.attributes.get(_ARGUMENT_KEYS[1])
    if not text or text.lstrip()[:1] != "{":
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None  # cut by the instrumentation's size limit, or not JSON
    if not isinstance(value, dict):
        return None
    return ",".join(sorted(value))

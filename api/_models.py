"""Response models of the query API (the contract's field names)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class SpanEvent(BaseModel):
    time: str
    name: str
    attributes: dict[str, str]


class SpanLinkOut(BaseModel):
    trace_id: str
    span_id: str
    attributes: dict[str, str]


class SpanOut(BaseModel):
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    service_name: str
    start_time: str
    end_time: str
    duration_ns: int
    status_code: str
    status_message: str
    attributes: dict[str, str]
    resource_attributes: dict[str, str]
    events: list[SpanEvent]
    links: list[SpanLinkOut]
    agent_name: str
    run_id: str
    operation: str
    tool_name: str
    tool_call_id: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    error_type: str
    is_error: bool


class TraceNode(BaseModel):
    """A span's place in the trace tree (details in `spans`)."""

    span_id: str
    name: str
    operation: str
    children: list[TraceNode]


class TraceOut(BaseModel):
    trace_id: str
    spans: list[SpanOut]  # in start order
    tree: list[TraceNode]  # roots (spans whose parent is not in the trace), children nested


class TraceSummary(BaseModel):
    trace_id: str
    root_span_name: str
    service_name: str
    agent_names: list[str]
    start_time: str
    duration_ns: int
    span_count: int
    error_count: int
    status: str
    cost_usd: float  # the trace's priced LLM spans
    unpriced_llm_calls: int  # its LLM calls with tokens that no price matched


class TraceList(BaseModel):
    traces: list[TraceSummary]
    next_cursor: str | None = None  # pass as `cursor` for the next (older) page


class FindingOut(BaseModel):
    id: str
    kind: str
    state: str
    severity: str
    agent_name: str
    service_name: str
    tool_name: str
    trace_id: str
    run_id: str
    opened_at: str
    updated_at: str
    resolved_at: str | None
    summary: str
    evidence: dict[str, Any]


class FindingList(BaseModel):
    findings: list[FindingOut]


class LogOut(BaseModel):
    time: str
    trace_id: str
    span_id: str
    severity_text: str
    severity_number: int
    service_name: str
    event_name: str
    body: str
    attributes: dict[str, str]
    resource_attributes: dict[str, str]


class LogList(BaseModel):
    logs: list[LogOut]


class AgentOut(BaseModel):
    """An agent as telemetry shows it (the registry built from spans)."""

    name: str
    service_name: str  # the service it ran under most recently
    services: list[str]
    owner: str  # resource attribute agent.owner, else service.owner ("" when unknown)
    tools: list[str]
    models: list[str]
    first_seen: str
    last_seen: str
    runs: int
    failed_runs: int
    success_rate: float | None  # None: no runs
    error_rate: float | None
    input_tokens: int
    output_tokens: int
    tool_calls: int
    tool_failures: int
    tool_failure_rate: float | None  # None: no tool calls
    cost_usd: float  # LLM spans priced by the shipped price table (or their own cost)
    unpriced_llm_calls: int  # LLM calls with tokens that no price matched
    open_findings: int


class AgentList(BaseModel):
    agents: list[AgentOut]


class TimePoint(BaseModel):
    time: str
    value: float | None


class AgentRoi(BaseModel):
    """Return on investment over the scorecard's range (api/_roi.py: the formula).

    A figure whose inputs the job description does not state is null, and `missing`
    names those inputs.
    """

    runs: int
    successful_runs: int
    success_rate: float | None
    human_minutes_per_run: float | None
    value_per_hour_usd: float | None
    time_saved_hours: float | None
    value_usd: float | None
    cost_usd: float  # priced LLM calls only: a lower bound when unpriced_llm_calls > 0
    unpriced_llm_calls: int
    cost_per_successful_run_usd: float | None  # None: no successful run
    net_value_usd: float | None
    formula: str  # the formulas with this range's numbers in them
    missing: list[str]  # inputs not stated in the job description's roi


class CostlyRun(BaseModel):
    run_id: str
    trace_id: str  # the run's first trace
    cost_usd: float
    llm_calls: int


class AgentScorecard(BaseModel):
    """One agent over a time range."""

    name: str
    since: str
    until: str
    services: list[str]
    owner: str
    runs: int
    failed_runs: int
    success_rate: float | None
    run_duration_p50_ns: int | None
    run_duration_p95_ns: int | None
    steps_per_run: float | None
    tool_calls: int
    tool_failures: int
    tool_failure_rate: float | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    cost_per_run_usd: float | None
    unpriced_llm_calls: int
    roi: AgentRoi
    costliest_runs: list[CostlyRun]  # the most expensive runs in the range, top first
    tools: list[str]
    models: list[str]
    evaluation_scores: dict[str, list[TimePoint]]  # evaluation name -> mean per bucket
    findings: list[FindingOut]
    # Governance: its job description (None: unregistered) and its kill switch.
    job: dict[str, Any] | None = None
    paused: bool = False
    pause_reason: str = ""


class ToolOut(BaseModel):
    name: str
    agents: list[str]
    calls: int
    failures: int
    failure_rate: float
    latency_p50_ns: int
    latency_p95_ns: int
    top_error_types: list[str]
    # The tool chain: the LLM calls that led to its calls (api/_tools.py defines it).
    cost_usd: float
    llm_calls: int


class ToolList(BaseModel):
    tools: list[ToolOut]


class ToolCallOut(BaseModel):
    """One tool call, for the audit trail."""

    time: str
    tenant: str
    agent_name: str
    service_name: str
    service_instance_id: str
    user_id: str  # enduser.id / user.id when the instrumentation sets it
    tool_name: str
    tool_call_id: str
    arguments_hash: str
    status: str  # ok / error
    error_type: str
    duration_ns: int
    trace_id: str
    span_id: str
    run_id: str


class ToolCallPage(BaseModel):
    tool_calls: list[ToolCallOut]
    next_cursor: str | None


class SeriesPoint(BaseModel):
    time: str
    series: str  # the group's value (agent, tool, service), "" when not grouped
    value: float | None


class TimeSeries(BaseModel):
    metric: str
    step_s: int
    points: list[SeriesPoint]


class AlertDelivery(BaseModel):
    """One notification: a finding version on its way to (or at) one receiver."""

    id: str
    finding_id: str
    kind: str
    receiver: str
    route: str
    event: str  # trigger / resolve / repeat
    status: str  # pending / sent / failed
    attempts: int
    created_at: str
    next_attempt_at: str | None  # while pending
    sent_at: str | None
    last_status_code: int | None
    last_error: str


class AlertDeliveryList(BaseModel):
    alerts: list[AlertDelivery]

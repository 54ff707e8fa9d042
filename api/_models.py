"""Response models of the query API (the contract's field names)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class SpanEvent(BaseModel):
    time: str
    name: str
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


class TraceOut(BaseModel):
    trace_id: str
    spans: list[SpanOut]


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


class TraceList(BaseModel):
    traces: list[TraceSummary]


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

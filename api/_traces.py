"""`/api/v1/traces`: one trace with every span, and trace summaries."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from api._cost import COST_COLUMNS, with_span_cost
from api._deps import StoreDep, TenantDep
from api._models import (
    SpanEvent,
    SpanLinkOut,
    SpanOut,
    TraceList,
    TraceNode,
    TraceOut,
    TraceSummary,
)
from api._query import Where, decode_cursor, encode_cursor
from api._time import format_ns, parse_time
from ingest import EnclosingResolver, SpanLink
from ingest._conventions import derive_agent_fields

router = APIRouter(prefix="/api/v1", tags=["traces"])

_HEX_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")

_SPAN_COLUMNS = """
    toUnixTimestamp64Nano(Timestamp) AS start_ns, SpanId, ParentSpanId, SpanName, SpanKind,
    ServiceName, Duration, StatusCode, StatusMessage, SpanAttributes, ResourceAttributes,
    arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS event_ns,
    `Events.Name` AS event_names, `Events.Attributes` AS event_attrs,
    `Links.TraceId` AS link_trace_ids, `Links.SpanId` AS link_span_ids,
    `Links.Attributes` AS link_attrs,
    AgentName, RunId, Operation, ToolName, ToolCallId, RequestModel, ResponseModel, Provider,
    InputTokens, OutputTokens, ErrorType, IsError
"""


def _tenant_clause(tenant: str | None) -> str:
    return " AND TenantId = {tenant:String}" if tenant is not None else ""


def parse_time_param(name: str, value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"{name}: {exc}") from None


@router.get("/traces/{trace_id}", response_model=TraceOut)
def get_trace(
    trace_id: str,
    store: StoreDep,
    tenant: TenantDep,
    markers: Annotated[
        bool, Query(description="include agentwatch_sdk marker spans (heartbeats, pending)")
    ] = False,
) -> TraceOut:
    if not _HEX_TRACE_ID.match(trace_id):
        raise HTTPException(status_code=400, detail="trace_id must be 32 hex characters")
    trace_id = trace_id.lower()
    params: dict[str, Any] = {"trace_id": trace_id, "tenant": tenant}
    bounds = store.query(
        f"SELECT min(Start) AS start, max(End) AS end FROM {store.table('otel_traces_trace_id_ts')}"
        " WHERE TraceId = {trace_id:String} HAVING count() > 0",
        params,
    )
    time_clause = ""
    if bounds:
        # The lookup table holds whole seconds; widen by one so no span falls outside.
        params["start"] = bounds[0]["start"] - timedelta(seconds=1)
        params["end"] = bounds[0]["end"] + timedelta(seconds=1)
        time_clause = " AND Timestamp >= {start:DateTime} AND Timestamp <= {end:DateTime}"
    rows = store.query(
        f"SELECT {_SPAN_COLUMNS} FROM {store.table('otel_traces')} "
        "WHERE TraceId = {trace_id:String}"
        + time_clause
        + _tenant_clause(tenant)
        + ("" if markers else " AND Marker = ''")
        + " ORDER BY start_ns LIMIT 1 BY SpanId",
        params,
    )
    if not rows:
        raise HTTPException(status_code=404, detail=f"trace {trace_id} not found")
    resolved = _resolve_enclosing(trace_id, rows)
    spans = [_span_out(row, *resolved[row["SpanId"]]) for row in rows]
    return TraceOut(trace_id=trace_id, spans=spans, tree=_tree(spans))


def _tree(spans: list[SpanOut]) -> list[TraceNode]:
    """Nest spans under their parents; a span whose parent is missing is a root."""
    nodes = {
        s.span_id: TraceNode(span_id=s.span_id, name=s.name, operation=s.operation, children=[])
        for s in spans
    }
    roots: list[TraceNode] = []
    for span in spans:  # in start order, so children are too
        parent = nodes.get(span.parent_span_id) if span.parent_span_id != span.span_id else None
        (parent.children if parent is not None else roots).append(nodes[span.span_id])
    return roots


def _resolve_enclosing(trace_id: str, rows: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Re-derive agent and run over the complete trace, whatever order spans arrived in."""
    links = []
    for row in rows:
        own = derive_agent_fields(row["SpanAttributes"])
        links.append(
            SpanLink(
                bytes.fromhex(trace_id),
                bytes.fromhex(row["SpanId"]),
                bytes.fromhex(row["ParentSpanId"]),
                own.agent_name,
                own.run_id,
            )
        )
    attributions, _ = EnclosingResolver(capacity=len(links) + 1).add(links)
    return {
        row["SpanId"]: (agent_name or row["ServiceName"], run_id or trace_id)
        for row, (agent_name, run_id) in zip(rows, attributions, strict=True)
    }


def _span_out(row: dict[str, Any], agent_name: str, run_id: str) -> SpanOut:
    start_ns = int(row["start_ns"])
    return SpanOut(
        span_id=row["SpanId"],
        parent_span_id=row["ParentSpanId"],
        name=row["SpanName"],
        kind=row["SpanKind"],
        service_name=row["ServiceName"],
        start_time=format_ns(start_ns),
        end_time=format_ns(start_ns + int(row["Duration"])),
        duration_ns=int(row["Duration"]),
        status_code=row["StatusCode"],
        status_message=row["StatusMessage"],
        attributes=row["SpanAttributes"],
        resource_attributes=row["ResourceAttributes"],
        events=[
            SpanEvent(time=format_ns(ts), name=name, attributes=attrs)
            for ts, name, attrs in zip(
                row["event_ns"], row["event_names"], row["event_attrs"], strict=True
            )
        ],
        links=[
            SpanLinkOut(trace_id=link_trace, span_id=link_span, attributes=attrs)
            for link_trace, link_span, attrs in zip(
                row["link_trace_ids"], row["link_span_ids"], row["link_attrs"], strict=True
            )
        ],
        agent_name=agent_name,
        run_id=run_id,
        operation=row["Operation"],
        tool_name=row["ToolName"],
        tool_call_id=row["ToolCallId"],
        model=row["ResponseModel"] or row["RequestModel"],
        provider=row["Provider"],
        input_tokens=int(row["InputTokens"]),
        output_tokens=int(row["OutputTokens"]),
        error_type=row["ErrorType"],
        is_error=bool(row["IsError"]),
    )


@router.get("/traces", response_model=TraceList)
def list_traces(
    store: StoreDep,
    tenant: TenantDep,
    service: str | None = None,
    agent: str | None = None,
    tool: Annotated[str | None, Query(description="traces with a call of this tool")] = None,
    q: Annotated[str | None, Query(description="text in a span name (case-insensitive)")] = None,
    since: Annotated[str | None, Query(description="RFC 3339, Unix time or '1h'")] = None,
    until: str | None = None,
    status: Literal["ok", "error"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> TraceList:
    """Trace summaries, newest first, a page at a time."""
    where = Where().tenant(tenant)
    where.time_range(since, until, timedelta(hours=24))
    having = Where()
    if service:
        having.add("has(services, {service:String})", service=service)
    if agent:
        having.add("has(agent_names, {agent:String})", agent=agent)
    if tool:
        having.add("has(tool_names, {tool:String})", tool=tool)
    if q:
        having.add(
            "arrayExists(n -> positionCaseInsensitiveUTF8(n, {q:String}) > 0, span_names)", q=q
        )
    if status == "error":
        having.add("error_count > 0")
    elif status == "ok":
        having.add("error_count = 0")
    if cursor is not None:
        cursor_ns, cursor_trace = decode_cursor(cursor)
        having.add(
            "(start_ns, TraceId) < ({cursor_ns:Int64}, {cursor_trace:String})",
            cursor_ns=cursor_ns,
            cursor_trace=cursor_trace,
        )
    rows = store.query(
        f"{with_span_cost()}SELECT TraceId, min(toUnixTimestamp64Nano(Timestamp)) AS start_ns, "
        "max(toUnixTimestamp64Nano(Timestamp) + Duration) AS end_ns, "
        "countIf(Marker = '') AS span_count, "
        "countIf(IsError = 1 AND Marker = '') AS error_count, "
        "groupUniqArray(ServiceName) AS services, "
        "groupUniqArrayIf(AgentName, Marker = '') AS agent_names, "
        "groupUniqArrayIf(ToolName, ToolName != '') AS tool_names, "
        "groupUniqArrayIf(SpanName, Marker = '') AS span_names, "
        "argMinIf(SpanName, Timestamp, ParentSpanId = '') AS root_name, "
        "argMinIf(ServiceName, Timestamp, ParentSpanId = '') AS root_service, "
        f"{COST_COLUMNS} FROM {store.table('otel_traces')} WHERE {where.sql()} "
        f"GROUP BY TraceId HAVING {having.sql()} "
        "ORDER BY start_ns DESC, TraceId DESC LIMIT {limit:UInt32}",
        {**where.params, **having.params, "limit": limit + 1},
    )
    page = rows[:limit]
    next_cursor = (
        encode_cursor(int(page[-1]["start_ns"]), page[-1]["TraceId"]) if len(rows) > limit else None
    )
    return TraceList(traces=[_summary(row) for row in page], next_cursor=next_cursor)


def _summary(row: dict[str, Any]) -> TraceSummary:
    return TraceSummary(
        trace_id=row["TraceId"],
        root_span_name=row["root_name"],
        service_name=row["root_service"] or (sorted(row["services"]) or [""])[0],
        agent_names=sorted(name for name in row["agent_names"] if name),
        start_time=format_ns(int(row["start_ns"])),
        duration_ns=int(row["end_ns"]) - int(row["start_ns"]),
        span_count=int(row["span_count"]),
        error_count=int(row["error_count"]),
        status="error" if row["error_count"] else "ok",
        cost_usd=float(row["cost_usd"]),
        unpriced_llm_calls=int(row["unpriced_llm_calls"]),
    )

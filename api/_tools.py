"""`/api/v1/tools` (per-tool health) and `/api/v1/audit/tool-calls` (every call).

A tool's `cost_usd` is the cost of its tool chain: the LLM calls that led to its calls.
Within a trace, each tool call is attributed to the most recent LLM call under the same
parent span that ended at or before the tool call started (an ASOF JOIN on trace,
parent and time); an LLM call that led to N tool calls splits its cost evenly among
them, whichever tools, agents or time range those are. A tool call no LLM call
preceded costs nothing. `llm_calls` counts the LLM calls that led to a tool's calls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from api._cost import with_span_cost
from api._deps import QueryStore, StoreDep, TenantDep
from api._models import ToolCallOut, ToolCallPage, ToolList, ToolOut
from api._query import LLM_CALL, TOOL_CALL, Where, decode_cursor, encode_cursor
from api._time import format_ns

router = APIRouter(prefix="/api/v1", tags=["tools"])
_DAY_NS = 86_400 * 10**9


@router.get("/tools", response_model=ToolList)
def list_tools(
    store: StoreDep,
    tenant: TenantDep,
    agent: str | None = None,
    service: str | None = None,
    since: Annotated[str | None, Query(description="default: 24 hours ago")] = None,
    until: str | None = None,
) -> ToolList:
    """Per tool: calls, failures, failure rate, latency, top error types, tool chain cost;
    busiest first."""
    where = Where().tenant(tenant).add(TOOL_CALL)
    where.equal("AgentName", "agent", agent).equal("ServiceName", "service", service)
    where.time_range(since, until, timedelta(hours=24))
    chains = _tool_chain_costs(store, tenant, where)
    rows = store.query(
        "SELECT ToolName, groupUniqArray(AgentName) AS agents, count() AS calls, "
        "countIf(IsError = 1) AS failures, quantiles(0.5, 0.95)(Duration) AS latency, "
        "topKIf(3)(ErrorType, ErrorType != '') AS error_types "
        f"FROM {store.table('otel_traces')} WHERE {where.sql()} "
        "GROUP BY ToolName ORDER BY calls DESC, ToolName LIMIT 10000",
        where.params,
    )
    return ToolList(tools=[_tool(row, *chains.get(row["ToolName"], (0.0, 0))) for row in rows])


def _tool_chain_costs(
    store: QueryStore, tenant: str | None, where: Where
) -> dict[str, tuple[float, int]]:
    """Tool name -> (cost of its tool chain, LLM calls in it), for the calls `where` picks.

    Every tool call of the traces with a picked call takes its share (so an LLM call
    is split among all the calls it led to), then only the picked calls are summed.
    """
    table = store.table("otel_traces")
    # The picked calls' traces, read within a day either side of the range: the
    # primary key then prunes the table (a trace rarely runs for more than a day).
    scope = (
        Where()
        .tenant(tenant)
        .add(
            f"Timestamp >= fromUnixTimestamp64Nano({{since_ns:Int64}} - {_DAY_NS}) "
            f"AND Timestamp <= fromUnixTimestamp64Nano({{until_ns:Int64}} + {_DAY_NS})"
        )
    )
    traces = f"SELECT DISTINCT TraceId FROM {table} WHERE {where.sql()}"
    calls = (
        "SELECT TraceId, ParentSpanId, SpanId, ToolName, Timestamp AS started, "
        f"({where.sql()}) AS picked FROM {table} "
        f"WHERE {TOOL_CALL} AND {scope.sql()} AND TraceId IN ({traces})"
    )
    llm_calls = (
        f"{with_span_cost()}SELECT TraceId, ParentSpanId, SpanId AS llm_span, "
        "Timestamp + toIntervalNanosecond(Duration) AS ended, ifNull(span_cost, 0) AS cost "
        f"FROM {table} WHERE {LLM_CALL} AND {scope.sql()} AND TraceId IN ({traces})"
    )
    attributed = (
        "SELECT c.ToolName AS tool, c.picked AS picked, l.llm_span AS llm_span, "
        "if(l.llm_span = '', 0, l.cost / count() OVER (PARTITION BY c.TraceId, l.llm_span)) "
        f"AS share FROM ({calls}) AS c ASOF LEFT JOIN ({llm_calls}) AS l "
        "ON c.TraceId = l.TraceId AND c.ParentSpanId = l.ParentSpanId AND c.started >= l.ended"
    )
    rows = store.query(
        "SELECT tool, round(sum(share), 6) AS cost_usd, "
        "uniqExactIf(llm_span, llm_span != '') AS llm_calls "
        f"FROM ({attributed}) WHERE picked GROUP BY tool",
        where.params,
    )
    return {row["tool"]: (float(row["cost_usd"]), int(row["llm_calls"])) for row in rows}


def _tool(row: dict[str, Any], cost_usd: float, llm_calls: int) -> ToolOut:
    calls, failures = int(row["calls"]), int(row["failures"])
    return ToolOut(
        name=row["ToolName"],
        agents=sorted(row["agents"]),
        calls=calls,
        failures=failures,
        failure_rate=round(failures / calls, 6) if calls else 0.0,
        latency_p50_ns=int(row["latency"][0]),
        latency_p95_ns=int(row["latency"][1]),
        top_error_types=list(row["error_types"]),
        cost_usd=cost_usd,
        llm_calls=llm_calls,
    )


_USER = (
    "if(SpanAttributes['enduser.id'] != '', SpanAttributes['enduser.id'], "
    "if(SpanAttributes['user.id'] != '', SpanAttributes['user.id'], "
    "ResourceAttributes['enduser.id']))"
)


@router.get("/audit/tool-calls", response_model=ToolCallPage)
def audit_tool_calls(
    store: StoreDep,
    tenant: TenantDep,
    agent: str | None = None,
    service: str | None = None,
    tool: str | None = None,
    trace_id: str | None = None,
    status: Literal["ok", "error"] | None = None,
    since: Annotated[str | None, Query(description="default: 24 hours ago")] = None,
    until: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ToolCallPage:
    """Every tool call — who, which tool, an arguments hash (never the arguments), the
    result, the trace — newest first, a page at a time."""
    where = Where().tenant(tenant).add(TOOL_CALL)
    where.equal("AgentName", "agent", agent).equal("ServiceName", "service", service)
    where.equal("ToolName", "tool", tool)
    where.equal("TraceId", "trace_id", trace_id.lower() if trace_id else None)
    if status is not None:
        where.add("IsError = {is_error:UInt8}", is_error=int(status == "error"))
    where.time_range(since, until, timedelta(hours=24))
    if cursor is not None:
        cursor_ns, cursor_span = decode_cursor(cursor)
        where.add(
            "(toUnixTimestamp64Nano(Timestamp), SpanId) "
            "< ({cursor_ns:Int64}, {cursor_span:String})",
            cursor_ns=cursor_ns,
            cursor_span=cursor_span,
        )
    rows = store.query(
        "SELECT toUnixTimestamp64Nano(Timestamp) AS time_ns, TenantId, AgentName, ServiceName, "
        f"ResourceAttributes['service.instance.id'] AS instance, {_USER} AS user_id, "
        "ToolName, ToolCallId, ToolArgsHash, IsError, ErrorType, Duration, TraceId, SpanId, "
        f"RunId FROM {store.table('otel_traces')} WHERE {where.sql()} "
        "ORDER BY time_ns DESC, SpanId DESC LIMIT 1 BY SpanId LIMIT {limit:UInt32}",
        {**where.params, "limit": limit + 1},
    )
    page = rows[:limit]
    next_cursor = (
        encode_cursor(int(page[-1]["time_ns"]), page[-1]["SpanId"]) if len(rows) > limit else None
    )
    return ToolCallPage(tool_calls=[_call(row) for row in page], next_cursor=next_cursor)


def _call(row: dict[str, Any]) -> ToolCallOut:
    return ToolCallOut(
        time=format_ns(int(row["time_ns"])),
        tenant=row["TenantId"],
        agent_name=row["AgentName"],
        service_name=row["ServiceName"],
        service_instance_id=row["instance"],
        user_id=row["user_id"],
        tool_name=row["ToolName"],
        tool_call_id=row["ToolCallId"],
        arguments_hash=row["ToolArgsHash"],
        status="error" if row["IsError"] else "ok",
        error_type=row["ErrorType"],
        duration_ns=int(row["Duration"]),
        trace_id=row["TraceId"],
        span_id=row["SpanId"],
        run_id=row["RunId"],
    )

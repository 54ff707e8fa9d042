"""`/api/v1/timeseries/{metric}`: bucketed series for Grafana (Infinity datasource).

The answer is long-format rows `{time, series, value}` under `points` — what the
Infinity backend parser reads into a data frame (so Grafana alerting can use it);
a panel's "prepare time series" (multi-frame) transformation makes one line per
series.

`cost` is the USD cost of the LLM calls in each bucket (priced as api/_cost.py prices
them; unpriced calls add nothing), by agent, service or model: `step=1d` gives cost per
day. LLM metrics (`cost`, `llm_calls`, `llm_latency_p95_ms`, tokens) may be grouped by
`model` (the response model, else the requested one).
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api._cost import with_span_cost
from api._deps import QueryStore, StoreDep, TenantDep
from api._evaluations import evaluation_rows
from api._models import SeriesPoint, TimeSeries
from api._query import (
    LLM_CALL,
    MODEL,
    NOT_MARKER,
    RUN_FAILED,
    TOOL_CALL,
    Where,
    step_seconds,
)
from api._time import format_ns

router = APIRouter(prefix="/api/v1", tags=["timeseries"])

MAX_POINTS_PER_SERIES = 11_000


class Metric(enum.StrEnum):
    spans = "spans"
    errors = "errors"
    runs = "runs"
    failed_runs = "failed_runs"
    run_duration_p95_ms = "run_duration_p95_ms"
    tool_calls = "tool_calls"
    tool_failures = "tool_failures"
    tool_failure_rate = "tool_failure_rate"
    tool_latency_p95_ms = "tool_latency_p95_ms"
    llm_calls = "llm_calls"
    llm_latency_p95_ms = "llm_latency_p95_ms"
    tokens = "tokens"
    input_tokens = "input_tokens"
    output_tokens = "output_tokens"
    cost = "cost"
    evaluation_score = "evaluation_score"
    findings_opened = "findings_opened"


class GroupBy(enum.StrEnum):
    none = "none"
    agent = "agent"
    tool = "tool"
    service = "service"
    model = "model"  # LLM metrics only
    evaluation = "evaluation"  # evaluation_score only
    kind = "kind"  # findings_opened only


# Span metrics: (aggregate, which spans).
_SPAN_METRICS = {
    Metric.spans: ("count()", NOT_MARKER),
    Metric.errors: ("countIf(IsError = 1)", NOT_MARKER),
    Metric.tool_calls: ("count()", TOOL_CALL),
    Metric.tool_failures: ("countIf(IsError = 1)", TOOL_CALL),
    Metric.tool_failure_rate: ("countIf(IsError = 1) / count()", TOOL_CALL),
    Metric.tool_latency_p95_ms: ("quantile(0.95)(Duration) / 1e6", TOOL_CALL),
    Metric.llm_calls: ("count()", LLM_CALL),
    Metric.llm_latency_p95_ms: ("quantile(0.95)(Duration) / 1e6", LLM_CALL),
    Metric.tokens: ("sum(InputTokens + OutputTokens)", NOT_MARKER),
    Metric.input_tokens: ("sum(InputTokens)", NOT_MARKER),
    Metric.output_tokens: ("sum(OutputTokens)", NOT_MARKER),
    Metric.cost: ("sum(ifNull(span_cost, 0))", LLM_CALL),
}
# Metrics of LLM calls (and tokens, which only LLM calls carry): groupable by model.
_LLM_METRICS = {
    Metric.llm_calls,
    Metric.llm_latency_p95_ms,
    Metric.tokens,
    Metric.input_tokens,
    Metric.output_tokens,
    Metric.cost,
}
# Run metrics, over runs bucketed by their start: (aggregate over runs).
_RUN_METRICS = {
    Metric.runs: "count()",
    Metric.failed_runs: "countIf(failed = 1)",
    Metric.run_duration_p95_ms: "quantile(0.95)(duration_ns) / 1e6",
}
_SPAN_GROUPS = {
    GroupBy.agent: "AgentName",
    GroupBy.tool: "ToolName",
    GroupBy.service: "ServiceName",
    GroupBy.model: MODEL,
}
_BUCKET = "toUnixTimestamp(toStartOfInterval({t}, toIntervalSecond({{step:UInt32}})))"


@router.get("/timeseries/{metric}", response_model=TimeSeries)
def timeseries(
    metric: Metric,
    store: StoreDep,
    tenant: TenantDep,
    since: Annotated[str | None, Query(description="default: 6 hours ago")] = None,
    until: str | None = None,
    step: Annotated[str, Query(description="bucket width: 30s, 5m, 1h")] = "5m",
    by: Annotated[GroupBy, Query(description="one series per agent, tool, service…")] = (
        GroupBy.none
    ),
    agent: str | None = None,
    tool: str | None = None,
    service: str | None = None,
) -> TimeSeries:
    step_s = step_seconds(step)
    where = Where().tenant(tenant)
    start, end = where.time_range(since, until, timedelta(hours=6))
    if (end - start).total_seconds() / step_s > MAX_POINTS_PER_SERIES:
        raise HTTPException(
            status_code=400,
            detail=f"step: more than {MAX_POINTS_PER_SERIES} buckets; use a larger step",
        )
    if metric is Metric.evaluation_score:
        sql = _evaluation_sql(store, where, by, agent)
    elif metric is Metric.findings_opened:
        sql = _findings_sql(store, tenant, where, by, agent, tool, service)
    else:
        where.equal("AgentName", "agent", agent).equal("ServiceName", "service", service)
        where.equal("ToolName", "tool", tool)
        sql = _span_sql(store, metric, where, by)
    rows = store.query(sql, {**where.params, "step": step_s})
    points = [
        SeriesPoint(
            time=format_ns(int(row["bucket_s"]) * 1_000_000_000),
            series=str(row["series"]),
            value=None if row["value"] is None else round(float(row["value"]), 6),
        )
        for row in rows
    ]
    return TimeSeries(metric=metric.value, step_s=step_s, points=points)


def _bad_group(metric: Metric, by: GroupBy) -> HTTPException:
    return HTTPException(status_code=400, detail=f"by: {metric.value} cannot be grouped by {by}")


def _span_sql(store: QueryStore, metric: Metric, where: Where, by: GroupBy) -> str:
    table = store.table("otel_traces")
    if by not in (GroupBy.none, *_SPAN_GROUPS):
        raise _bad_group(metric, by)
    if by is GroupBy.model and metric not in _LLM_METRICS:
        raise _bad_group(metric, by)
    if by is GroupBy.tool and metric is Metric.cost:
        raise _bad_group(metric, by)  # LLM calls are no tool's; /tools has tool chain cost
    series = _SPAN_GROUPS.get(by, "''")
    if metric in _RUN_METRICS:
        if by is GroupBy.tool:
            raise _bad_group(metric, by)
        runs = (
            f"SELECT RunId, any({series}) AS series, min(Timestamp) AS started, "
            "toUnixTimestamp64Nano(max(Timestamp + toIntervalNanosecond(Duration))) "
            "- toUnixTimestamp64Nano(min(Timestamp)) AS duration_ns, "
            f"{RUN_FAILED} AS failed FROM {table} WHERE {NOT_MARKER} AND {where.sql()} "
            "GROUP BY RunId"
        )
        return (
            f"SELECT {_BUCKET.format(t='started')} AS bucket_s, series, "
            f"{_RUN_METRICS[metric]} AS value FROM ({runs}) "
            "GROUP BY bucket_s, series ORDER BY bucket_s, series"
        )
    aggregate, spans = _SPAN_METRICS[metric]
    return (
        f"{with_span_cost() if metric is Metric.cost else ''}"
        f"SELECT {_BUCKET.format(t='Timestamp')} AS bucket_s, {series} AS series, "
        f"{aggregate} AS value FROM {table} WHERE {spans} AND {where.sql()} "
        "GROUP BY bucket_s, series ORDER BY bucket_s, series"
    )


def _evaluation_sql(store: QueryStore, where: Where, by: GroupBy, agent: str | None) -> str:
    groups = {GroupBy.none: "''", GroupBy.agent: "agent", GroupBy.evaluation: "evaluation"}
    if by not in groups:
        raise _bad_group(Metric.evaluation_score, by)
    agent_clause = ""
    if agent:
        where.params["agent"] = agent
        agent_clause = " WHERE agent = {agent:String}"
    return (
        f"SELECT {_BUCKET.format(t='ts')} AS bucket_s, {groups[by]} AS series, "
        f"avg(score) AS value FROM ({evaluation_rows(store, where)}){agent_clause} "
        "GROUP BY bucket_s, series ORDER BY bucket_s, series"
    )


def _findings_sql(
    store: QueryStore,
    tenant: str | None,
    where: Where,
    by: GroupBy,
    agent: str | None,
    tool: str | None,
    service: str | None,
) -> str:
    groups = {
        GroupBy.none: "''",
        GroupBy.agent: "AgentName",
        GroupBy.tool: "ToolName",
        GroupBy.service: "ServiceName",
        GroupBy.kind: "Kind",
    }
    if by not in groups:
        raise _bad_group(Metric.findings_opened, by)
    findings = Where().tenant(tenant)
    findings.add(
        "OpenedAt >= fromUnixTimestamp64Nano({since_ns:Int64}) "
        "AND OpenedAt <= fromUnixTimestamp64Nano({until_ns:Int64})"
    )
    findings.equal("AgentName", "agent", agent).equal("ToolName", "tool", tool)
    findings.equal("ServiceName", "service", service)
    where.params.update(findings.params)
    return (
        f"SELECT {_BUCKET.format(t='OpenedAt')} AS bucket_s, {groups[by]} AS series, "
        f"count() AS value FROM {store.table('findings')} FINAL WHERE {findings.sql()} "
        "GROUP BY bucket_s, series ORDER BY bucket_s, series"
    )

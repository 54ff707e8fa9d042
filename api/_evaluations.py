"""Evaluation scores, wherever they arrived: span events and log records.

`gen_ai.evaluation.result` comes as a span event (older instrumentations, OpenInference
exporters) or as an OTLP log record (current GenAI instrumentations). A log record
rarely names its agent; it takes its trace's agent (the trace's invoke_agent span
first), else its service — as the detectors do.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from api._models import TimePoint
from api._query import Where
from api._time import format_ns, to_ns

EVENT = "gen_ai.evaluation.result"


def evaluation_rows(store: Any, where: Where) -> str:
    """A subquery of (ts, agent, evaluation, score) rows matching `where`'s tenant and time.

    `where` must hold only clauses valid on both otel_traces and otel_logs (TenantId,
    Timestamp); its parameters are the caller's to bind.
    """
    traces, logs = store.table("otel_traces"), store.table("otel_logs")
    condition = where.sql()
    return (
        "SELECT ts, agent, evaluation, score FROM ("
        "SELECT event_ts AS ts, AgentName AS agent, "
        "event_attrs['gen_ai.evaluation.name'] AS evaluation, "
        "toFloat64OrNull(event_attrs['gen_ai.evaluation.score.value']) AS score "
        f"FROM {traces} ARRAY JOIN `Events.Timestamp` AS event_ts, `Events.Name` AS event_name, "
        f"`Events.Attributes` AS event_attrs WHERE event_name = '{EVENT}' AND {condition} "
        "UNION ALL "
        "SELECT Timestamp AS ts, "
        "multiIf(LogAttributes['gen_ai.agent.name'] != '', LogAttributes['gen_ai.agent.name'], "
        "trace_agents.agent != '', trace_agents.agent, ServiceName) AS agent, "
        "LogAttributes['gen_ai.evaluation.name'] AS evaluation, "
        "toFloat64OrNull(LogAttributes['gen_ai.evaluation.score.value']) AS score "
        f"FROM {logs} AS l LEFT JOIN (SELECT TraceId, "
        "argMax(AgentName, Operation = 'invoke_agent') AS agent "
        f"FROM {traces} WHERE Marker = '' AND {condition} GROUP BY TraceId) AS trace_agents "
        f"ON l.TraceId = trace_agents.TraceId WHERE EventName = '{EVENT}' AND {condition}"
        ") WHERE score IS NOT NULL"
    )


def evaluation_series(
    store: Any, tenant: str | None, agent: str, start: datetime, end: datetime, step_s: int
) -> dict[str, list[TimePoint]]:
    """Mean score per bucket of `step_s`, per evaluation name, for one agent."""
    where = Where().tenant(tenant)
    where.add(
        "Timestamp >= fromUnixTimestamp64Nano({since_ns:Int64}) "
        "AND Timestamp <= fromUnixTimestamp64Nano({until_ns:Int64})",
        since_ns=to_ns(start),
        until_ns=to_ns(end),
    )
    rows = store.query(
        "SELECT evaluation, toUnixTimestamp64Nano(toDateTime64("
        "toStartOfInterval(ts, toIntervalSecond({step:UInt32})), 9)) AS bucket_ns, "
        f"avg(score) AS value FROM ({evaluation_rows(store, where)}) "
        "WHERE agent = {agent:String} GROUP BY evaluation, bucket_ns "
        "ORDER BY evaluation, bucket_ns",
        {**where.params, "agent": agent, "step": step_s},
    )
    series: dict[str, list[TimePoint]] = defaultdict(list)
    for row in rows:
        series[row["evaluation"] or "(unnamed)"].append(
            TimePoint(time=format_ns(int(row["bucket_ns"])), value=round(float(row["value"]), 6))
        )
    return dict(series)

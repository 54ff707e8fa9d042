"""`/api/v1/logs`: OTLP log records (events such as `gen_ai.evaluation.result`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api._deps import StoreDep, TenantDep
from api._models import LogList, LogOut
from api._time import format_ns
from api._traces import parse_time_param

router = APIRouter(prefix="/api/v1", tags=["logs"])


@router.get("/logs", response_model=LogList)
def list_logs(
    store: StoreDep,
    tenant: TenantDep,
    trace_id: str | None = None,
    span_id: str | None = None,
    event_name: str | None = None,
    service: str | None = None,
    since: Annotated[
        str | None, Query(description="RFC 3339, Unix time or a duration ago; default 1h")
    ] = None,
    until: Annotated[str | None, Query(description="default now")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> LogList:
    """Newest first. With `trace_id` the time range is ignored: a trace's logs, whenever."""
    now = datetime.now(UTC)
    params: dict[str, Any] = {"limit": limit}
    where = []
    filters: list[tuple[str, Any, str]] = [
        ("tenant", tenant, "TenantId = {tenant:String}"),
        ("trace_id", trace_id.lower() if trace_id else None, "TraceId = {trace_id:String}"),
        ("span_id", span_id.lower() if span_id else None, "SpanId = {span_id:String}"),
        ("event_name", event_name, "EventName = {event_name:String}"),
        ("service", service, "ServiceName = {service:String}"),
    ]
    for name, value, clause in filters:
        if value is not None:
            params[name] = value
            where.append(clause)
    if trace_id is None:
        params["start"] = parse_time_param("since", since, now - timedelta(hours=1))
        params["end"] = parse_time_param("until", until, now + timedelta(minutes=5))
        where.append("Timestamp >= {start:DateTime64(9)} AND Timestamp <= {end:DateTime64(9)}")
    rows = store.query(
        "SELECT toUnixTimestamp64Nano(Timestamp) AS time_ns, TraceId, SpanId, SeverityText, "
        "SeverityNumber, ServiceName, EventName, Body, LogAttributes, ResourceAttributes "
        f"FROM {store.table('otel_logs')} WHERE "
        + (" AND ".join(where) or "1")
        + " ORDER BY Timestamp DESC LIMIT {limit:UInt32}",
        params,
    )
    return LogList(logs=[_log(row) for row in rows])


def _log(row: dict[str, Any]) -> LogOut:
    return LogOut(
        time=format_ns(row["time_ns"]),
        trace_id=row["TraceId"],
        span_id=row["SpanId"],
        severity_text=row["SeverityText"],
        severity_number=row["SeverityNumber"],
        service_name=row["ServiceName"],
        event_name=row["EventName"],
        body=row["Body"],
        attributes=dict(row["LogAttributes"]),
        resource_attributes=dict(row["ResourceAttributes"]),
    )

"""`/api/v1/findings`: what the detectors found, newest first."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query

from api._deps import StoreDep, TenantDep
from api._models import FindingList, FindingOut
from api._traces import parse_time_param

router = APIRouter(prefix="/api/v1", tags=["findings"])

_FINDING_COLUMNS = (
    "Id, Kind, State, Severity, AgentName, ServiceName, ToolName, TraceId, RunId, "
    "OpenedAt, UpdatedAt, ResolvedAt, Summary, Evidence"
)


@router.get("/findings", response_model=FindingList)
def list_findings(
    store: StoreDep,
    tenant: TenantDep,
    kind: Annotated[list[str] | None, Query(description="one or more finding kinds")] = None,
    state: Literal["open", "resolved"] | None = None,
    severity: Annotated[list[str] | None, Query()] = None,
    agent: str | None = None,
    service: str | None = None,
    tool: str | None = None,
    trace_id: str | None = None,
    since: Annotated[
        str | None,
        Query(description="open at or after this time: RFC 3339, Unix time or '1h' ago"),
    ] = None,
    until: Annotated[
        str | None, Query(description="opened at or before this time (same forms as since)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FindingList:
    where = ["1"]
    params: dict[str, Any] = {"limit": limit}
    filters: list[tuple[str, Any, str]] = [
        ("tenant", tenant, "TenantId = {tenant:String}"),
        ("kinds", kind, "Kind IN {kinds:Array(String)}"),
        ("state", state, "State = {state:String}"),
        ("severities", severity, "Severity IN {severities:Array(String)}"),
        ("agent", agent, "AgentName = {agent:String}"),
        ("service", service, "ServiceName = {service:String}"),
        ("tool", tool, "ToolName = {tool:String}"),
        ("trace_id", trace_id.lower() if trace_id else None, "TraceId = {trace_id:String}"),
    ]
    for name, value, clause in filters:
        if value is not None:
            params[name] = value
            where.append(clause)
    if since is not None:
        # Findings that were open at some point since then: still open, or resolved later.
        params["since"] = parse_time_param("since", since, datetime.now(UTC))
        where.append("(ResolvedAt IS NULL OR ResolvedAt >= {since:DateTime64(3)})")
    if until is not None:
        params["until"] = parse_time_param("until", until, datetime.now(UTC))
        where.append("OpenedAt <= {until:DateTime64(3)}")
    rows = store.query(
        f"SELECT {_FINDING_COLUMNS} FROM {store.table('findings')} FINAL WHERE "
        + " AND ".join(where)
        + " ORDER BY OpenedAt DESC, Id LIMIT {limit:UInt32}",
        params,
    )
    return FindingList(findings=[finding_out(row) for row in rows])


@router.get("/findings/{finding_id}", response_model=FindingOut)
def get_finding(finding_id: str, store: StoreDep, tenant: TenantDep) -> FindingOut:
    params: dict[str, Any] = {"id": finding_id.lower(), "tenant": tenant}
    tenant_clause = " AND TenantId = {tenant:String}" if tenant is not None else ""
    rows = store.query(
        f"SELECT {_FINDING_COLUMNS} FROM {store.table('findings')} FINAL "
        "WHERE Id = {id:String}" + tenant_clause,
        params,
    )
    if not rows:
        raise HTTPException(status_code=404, detail=f"finding {finding_id} not found")
    return finding_out(rows[0])


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def findings_columns() -> str:
    """The columns `finding_out` reads, for other endpoints' findings queries."""
    return _FINDING_COLUMNS


def finding_out(row: dict[str, Any]) -> FindingOut:
    return FindingOut(
        id=row["Id"],
        kind=row["Kind"],
        state=row["State"],
        severity=row["Severity"],
        agent_name=row["AgentName"],
        service_name=row["ServiceName"],
        tool_name=row["ToolName"],
        trace_id=row["TraceId"],
        run_id=row["RunId"],
        opened_at=_time(row["OpenedAt"]) or "",
        updated_at=_time(row["UpdatedAt"]) or "",
        resolved_at=_time(row["ResolvedAt"]),
        summary=row["Summary"],
        evidence=json.loads(row["Evidence"] or "{}"),
    )

"""`/api/v1/agents`: the registry built from telemetry, and one agent's scorecard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from api._cost import COST_COLUMNS, with_span_cost
from api._deps import ContextDep, StoreDep, TenantDep
from api._evaluations import evaluation_series
from api._findings import finding_out, findings_columns
from api._models import AgentList, AgentOut, AgentScorecard, CostlyRun, TimePoint
from api._query import (
    AGENT_SPAN,
    LLM_CALL,
    MODEL,
    NOT_MARKER,
    RUN_FAILED,
    STEP,
    TOOL_CALL,
    Where,
    step_seconds,
)
from api._roi import agent_roi
from api._time import format_ns

router = APIRouter(prefix="/api/v1", tags=["agents"])

COSTLIEST_RUNS = 10

_OWNER = (
    "if(ResourceAttributes['agent.owner'] != '', ResourceAttributes['agent.owner'], "
    "ResourceAttributes['service.owner'])"
)

# Per agent: what it is and does. Runs are counted per (agent, run id).
_AGENT_COLUMNS = f"""
    AgentName AS name,
    argMax(ServiceName, Timestamp) AS service_name,
    groupUniqArray(ServiceName) AS services,
    argMaxIf({_OWNER}, Timestamp, {_OWNER} != '') AS owner,
    groupUniqArrayIf(ToolName, {TOOL_CALL}) AS tools,
    groupUniqArrayIf({MODEL}, {LLM_CALL} AND {MODEL} != '') AS models,
    toUnixTimestamp64Nano(min(Timestamp)) AS first_ns,
    toUnixTimestamp64Nano(max(Timestamp)) AS last_ns,
    uniqExact(RunId) AS runs,
    uniqExactIf(RunId, {AGENT_SPAN} AND IsError = 1) AS failed_runs,
    sum(InputTokens) AS input_tokens,
    sum(OutputTokens) AS output_tokens,
    countIf({TOOL_CALL}) AS tool_calls,
    countIf({TOOL_CALL} AND IsError = 1) AS tool_failures
"""


@router.get("/agents", response_model=AgentList)
def list_agents(
    store: StoreDep,
    tenant: TenantDep,
    service: str | None = None,
    since: Annotated[str | None, Query(description="default: 30 days ago")] = None,
    until: str | None = None,
) -> AgentList:
    """Every agent seen in the time range, most recently active first."""
    where = Where().tenant(tenant).add(NOT_MARKER).equal("ServiceName", "service", service)
    where.time_range(since, until, timedelta(days=30))
    rows = store.query(
        f"{with_span_cost()}SELECT {_AGENT_COLUMNS}, {COST_COLUMNS} "
        f"FROM {store.table('otel_traces')} WHERE {where.sql()} "
        "GROUP BY AgentName ORDER BY last_ns DESC, name LIMIT 10000",
        where.params,
    )
    open_findings = _open_findings(store, tenant)
    return AgentList(agents=[_agent(row, open_findings.get(row["name"], 0)) for row in rows])


def _open_findings(store: Any, tenant: str | None, agent: str | None = None) -> dict[str, int]:
    where = Where().tenant(tenant).add("State = 'open'").equal("AgentName", "agent", agent)
    rows = store.query(
        f"SELECT AgentName, count() AS n FROM {store.table('findings')} FINAL "
        f"WHERE {where.sql()} GROUP BY AgentName",
        where.params,
    )
    return {row["AgentName"]: int(row["n"]) for row in rows}


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


def _agent(row: dict[str, Any], open_findings: int) -> AgentOut:
    runs, failed = int(row["runs"]), int(row["failed_runs"])
    success = _rate(runs - failed, runs)
    return AgentOut(
        name=row["name"],
        service_name=row["service_name"],
        services=sorted(row["services"]),
        owner=row["owner"],
        tools=sorted(row["tools"]),
        models=sorted(row["models"]),
        first_seen=format_ns(int(row["first_ns"])),
        last_seen=format_ns(int(row["last_ns"])),
        runs=runs,
        failed_runs=failed,
        success_rate=success,
        error_rate=None if success is None else round(1 - success, 6),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        tool_calls=int(row["tool_calls"]),
        tool_failures=int(row["tool_failures"]),
        tool_failure_rate=_rate(int(row["tool_failures"]), int(row["tool_calls"])),
        cost_usd=float(row["cost_usd"]),
        unpriced_llm_calls=int(row["unpriced_llm_calls"]),
        open_findings=open_findings,
    )


@router.get("/agents/{name:path}", response_model=AgentScorecard)
def get_agent(
    name: str,
    store: StoreDep,
    tenant: TenantDep,
    context: ContextDep,
    since: Annotated[str | None, Query(description="default: 24 hours ago")] = None,
    until: str | None = None,
    step: Annotated[str, Query(description="bucket of the evaluation score trend")] = "1h",
) -> AgentScorecard:
    """One agent's scorecard over a time range (404 if it was never seen)."""
    step_s = step_seconds(step, minimum_s=60)
    where = Where().tenant(tenant).add(NOT_MARKER).equal("AgentName", "agent", name)
    start, end = where.time_range(since, until, timedelta(hours=24))
    table = store.table("otel_traces")
    totals = store.query(
        f"{with_span_cost()}SELECT count() AS spans, groupUniqArray(ServiceName) AS services, "
        f"{COST_COLUMNS}, "
        f"argMaxIf({_OWNER}, Timestamp, {_OWNER} != '') AS owner, "
        f"groupUniqArrayIf(ToolName, {TOOL_CALL}) AS tools, "
        f"groupUniqArrayIf({MODEL}, {LLM_CALL} AND {MODEL} != '') AS models, "
        f"countIf({TOOL_CALL}) AS tool_calls, countIf({TOOL_CALL} AND IsError = 1) AS failures, "
        f"sum(InputTokens) AS input_tokens, sum(OutputTokens) AS output_tokens "
        f"FROM {table} WHERE {where.sql()}",
        where.params,
    )[0]
    registry = context.jobs()
    job = registry.get(name) if registry is not None else None
    if not int(totals["spans"]) and job is None and not _ever_seen(store, tenant, name):
        raise HTTPException(status_code=404, detail=f"agent {name} not seen nor registered")
    control = (
        context.control.control(tenant or "default", name) if context.control is not None else {}
    )
    runs = store.query(
        "SELECT count() AS runs, countIf(failed = 1) AS failed, "
        "quantilesExact(0.5, 0.95)(duration_ns) AS duration, avg(steps) AS steps "
        "FROM (SELECT RunId, "
        "toUnixTimestamp64Nano(max(Timestamp + toIntervalNanosecond(Duration))) "
        "- toUnixTimestamp64Nano(min(Timestamp)) AS duration_ns, "
        f"countIf({STEP}) AS steps, {RUN_FAILED} AS failed "
        f"FROM {table} WHERE {where.sql()} GROUP BY RunId)",
        where.params,
    )[0]
    run_count, failed = int(runs["runs"]), int(runs["failed"])
    durations = runs["duration"] if run_count else [None, None]
    tool_calls, failures = int(totals["tool_calls"]), int(totals["failures"])
    findings = store.query(
        f"SELECT {findings_columns()} FROM {store.table('findings')} FINAL "
        "WHERE AgentName = {agent:String}"
        + (" AND TenantId = {tenant:String}" if tenant is not None else "")
        + " AND (ResolvedAt IS NULL OR ResolvedAt >= {start:DateTime64(3)}) "
        "AND OpenedAt <= {end:DateTime64(3)} ORDER BY OpenedAt DESC LIMIT 100",
        {"agent": name, "tenant": tenant, "start": start, "end": end},
    )
    cost_usd, unpriced = float(totals["cost_usd"]), int(totals["unpriced_llm_calls"])
    return AgentScorecard(
        name=name,
        since=_iso(start),
        until=_iso(end),
        services=sorted(totals["services"]),
        owner=totals["owner"],
        runs=run_count,
        failed_runs=failed,
        success_rate=_rate(run_count - failed, run_count),
        run_duration_p50_ns=None if durations[0] is None else int(durations[0]),
        run_duration_p95_ns=None if durations[1] is None else int(durations[1]),
        steps_per_run=None if not run_count else round(float(runs["steps"]), 3),
        tool_calls=tool_calls,
        tool_failures=failures,
        tool_failure_rate=_rate(failures, tool_calls),
        input_tokens=int(totals["input_tokens"]),
        output_tokens=int(totals["output_tokens"]),
        cost_usd=cost_usd,
        cost_per_run_usd=round(cost_usd / run_count, 6) if run_count else None,
        unpriced_llm_calls=unpriced,
        roi=agent_roi(
            run_count, run_count - failed, cost_usd, unpriced, job.roi if job is not None else None
        ),
        costliest_runs=_costliest_runs(store, where) if cost_usd > 0 else [],
        tools=sorted(totals["tools"]),
        models=sorted(totals["models"]),
        evaluation_scores={
            evaluation: [TimePoint(time=p.time, value=p.value) for p in points]
            for evaluation, points in evaluation_series(
                store, tenant, name, start, end, step_s
            ).items()
        },
        findings=[finding_out(row) for row in findings],
        job=job.model_dump(mode="json") if job is not None else None,
        paused=bool(control.get("paused")),
        pause_reason=control.get("reason", ""),
    )


def _costliest_runs(store: Any, where: Where) -> list[CostlyRun]:
    rows = store.query(
        f"{with_span_cost()}SELECT RunId, argMin(TraceId, Timestamp) AS trace_id, "
        f"{COST_COLUMNS}, countIf({LLM_CALL}) AS llm_calls "
        f"FROM {store.table('otel_traces')} WHERE {where.sql()} "
        f"GROUP BY RunId HAVING cost_usd > 0 ORDER BY cost_usd DESC, RunId LIMIT {COSTLIEST_RUNS}",
        where.params,
    )
    return [
        CostlyRun(
            run_id=row["RunId"],
            trace_id=row["trace_id"],
            cost_usd=float(row["cost_usd"]),
            llm_calls=int(row["llm_calls"]),
        )
        for row in rows
    ]


def _ever_seen(store: Any, tenant: str | None, name: str) -> bool:
    where = Where().tenant(tenant).equal("AgentName", "agent", name)
    rows = store.query(
        f"SELECT 1 FROM {store.table('otel_traces')} WHERE {where.sql()} LIMIT 1", where.params
    )
    return bool(rows)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

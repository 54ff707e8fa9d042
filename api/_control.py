"""The kill switch and the governance audit trail.

`POST /api/v1/agents/{name}/pause` and `/resume` set an agent's switch (API token
required when tokens are configured; who, when and why are recorded);
`GET /api/v1/agents/{name}/control` is what `agentwatch_sdk` polls to stop a paused
agent at its next step; `GET /api/v1/audit/events` lists every governance change
(pauses, resumes, job descriptions loaded). Kept in SQLite in the data dir, so a
switch holds across restarts.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field

from api._deps import ContextDep, TenantDep
from api._query import time_param

router = APIRouter(prefix="/api/v1", tags=["governance"])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_controls (
    tenant TEXT NOT NULL,
    agent TEXT NOT NULL,
    paused INTEGER NOT NULL,
    reason TEXT NOT NULL,
    changed_at REAL NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (tenant, agent)
);
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    tenant TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL
);
"""


class ControlStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def set_paused(
        self, tenant: str, agent: str, paused: bool, reason: str, actor: str
    ) -> dict[str, Any]:
        now = time.time()
        action = "pause" if paused else "resume"
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO agent_controls VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (tenant, agent) DO UPDATE SET paused = excluded.paused, "
                "reason = excluded.reason, changed_at = excluded.changed_at, "
                "changed_by = excluded.changed_by",
                (tenant, agent, int(paused), reason, now, actor),
            )
            self._record(now, tenant, actor, action, agent, {"reason": reason})
            self._db.execute("COMMIT")
        return self.control(tenant, agent)

    def control(self, tenant: str, agent: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute(
                "SELECT paused, reason, changed_at, changed_by FROM agent_controls "
                "WHERE tenant = ? AND agent = ?",
                (tenant, agent),
            ).fetchone()
        paused = bool(row and row[0])
        return {
            "agent": agent,
            "paused": paused,
            "reason": row[1] if paused else "",
            "paused_at": _iso(row[2]) if paused else None,
            "paused_by": row[3] if paused else "",
        }

    def record(self, tenant: str, actor: str, action: str, target: str, details: Any) -> None:
        with self._lock:
            self._record(time.time(), tenant, actor, action, target, details)

    def _record(
        self, now: float, tenant: str, actor: str, action: str, target: str, details: Any
    ) -> None:
        self._db.execute(
            "INSERT INTO audit_events (time, tenant, actor, action, target, details) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (now, tenant, actor, action, target, json.dumps(details, sort_keys=True)),
        )

    def events(
        self, tenant: str | None, action: str | None, since: float, limit: int
    ) -> list[dict[str, Any]]:
        where = ["time >= ?"]
        params: list[float | str] = [since]
        if tenant is not None:
            # Registry-wide events (job descriptions) belong to every tenant.
            where.append("(tenant = ? OR tenant = '*')")
            params.append(tenant)
        if action is not None:
            where.append("action = ?")
            params.append(action)
        with self._lock:
            rows = self._db.execute(
                "SELECT id, time, tenant, actor, action, target, details FROM audit_events "
                f"WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [
            {
                "id": row[0],
                "time": _iso(row[1]),
                "tenant": row[2],
                "actor": row[3],
                "action": row[4],
                "target": row[5],
                "details": json.loads(row[6]),
            }
            for row in rows
        ]


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SwitchRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)  # why: recorded and shown to the agent
    actor: str = Field(default="", max_length=200)  # who, in people's terms (e.g. an email)


class SwitchRequestOptionalReason(BaseModel):
    reason: str = Field(default="", max_length=2000)
    actor: str = Field(default="", max_length=200)


class ControlOut(BaseModel):
    agent: str
    paused: bool
    reason: str
    paused_at: str | None
    paused_by: str


class AuditEvent(BaseModel):
    id: int
    time: str
    tenant: str
    actor: str
    action: str  # pause / resume / jobs_loaded / jobs_rejected / score
    target: str
    details: Any


class AuditEventList(BaseModel):
    events: list[AuditEvent]


def _store(context: Any) -> ControlStore:
    if context.control is None:
        raise HTTPException(status_code=503, detail="the kill switch is not available")
    store: ControlStore = context.control
    return store


def actor_of(request: Request, tenant: str | None, given: str) -> str:
    """Who: the caller's own words, and the tenant and fingerprint of the token used."""
    _, _, token = request.headers.get("authorization", "").partition(" ")
    fingerprint = hashlib.sha256(token.strip().encode()).hexdigest()[:8] if token else "none"
    caller = f"tenant={tenant or 'default'} token={fingerprint}"
    return f"{given} ({caller})" if given else caller


@router.post("/agents/{name:path}/pause", response_model=ControlOut)
def pause_agent(
    name: str, body: SwitchRequest, request: Request, context: ContextDep, tenant: TenantDep
) -> ControlOut:
    """Stop an agent at its next step (agents using agentwatch_sdk's heartbeat)."""
    actor = actor_of(request, tenant, body.actor)
    state = _store(context).set_paused(tenant or "default", name, True, body.reason, actor)
    return ControlOut(**state)


@router.post("/agents/{name:path}/resume", response_model=ControlOut)
def resume_agent(
    name: str,
    body: SwitchRequestOptionalReason,
    request: Request,
    context: ContextDep,
    tenant: TenantDep,
) -> ControlOut:
    actor = actor_of(request, tenant, body.actor)
    state = _store(context).set_paused(tenant or "default", name, False, body.reason, actor)
    return ControlOut(**state)


@router.get("/agents/{name:path}/control", response_model=ControlOut)
def agent_control(name: str, context: ContextDep, tenant: TenantDep) -> ControlOut:
    """Whether the agent should stop (polled by agentwatch_sdk)."""
    return ControlOut(**_store(context).control(tenant or "default", name))


@router.get("/audit/events", response_model=AuditEventList)
def audit_events(
    context: ContextDep,
    tenant: TenantDep,
    action: str | None = None,
    since: Annotated[str | None, Query(description="default: 30 days ago")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEventList:
    """Every governance change, newest first."""
    start = time_param("since", since, datetime.now(UTC) - timedelta(days=30))
    rows = _store(context).events(tenant, action, start.timestamp(), limit)
    return AuditEventList(events=[AuditEvent(**row) for row in rows])

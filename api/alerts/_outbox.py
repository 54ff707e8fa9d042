"""The durable outbox and notification log (SQLite in the data dir).

A finding version is turned into notifications in one transaction with the
notification log — the per (finding, receiver) record of what was announced — so a
crash between the two cannot double or drop a page, and replaying findings after a
restart (the detectors re-derive them with the same ids) enqueues nothing twice.
Delivery then works the outbox; a notification is marked sent only after the
receiver's 2xx.

Order: a notification waits while an earlier one for the same finding and receiver is
still pending, so a resolve never overtakes its trigger.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detectors import Finding

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    finding_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    receiver TEXT NOT NULL,
    route TEXT NOT NULL,
    event TEXT NOT NULL,            -- trigger / resolve / repeat
    finding TEXT NOT NULL,          -- the finding version, JSON
    status TEXT NOT NULL,           -- pending / sent / failed
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    sent_at REAL,
    last_status_code INTEGER,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX IF NOT EXISTS notifications_finding ON notifications (finding_id, receiver, seq);
CREATE TABLE IF NOT EXISTS notification_log (
    finding_id TEXT NOT NULL,
    receiver TEXT NOT NULL,
    route TEXT NOT NULL,
    state TEXT NOT NULL,            -- open / resolved: what the receiver was last told
    severity TEXT NOT NULL,
    finding TEXT NOT NULL,
    notified_at REAL NOT NULL,      -- last trigger or repeat enqueued
    PRIMARY KEY (finding_id, receiver)
);
"""

_SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    seq: int
    finding_id: str
    tenant: str
    receiver: str
    route: str
    event: str
    finding: dict[str, Any]
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class Planned:
    """A notification to enqueue: for this receiver, via this route, this event."""

    receiver: str
    route: str
    send_resolved: bool
    # A trigger waits this long first, so others of its group can join it (group_wait).
    hold_s: float = 0.0


class Outbox:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, used from the event loop and the delivery task; SQLite
        # serializes writers, this lock serializes our use of the connection.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")  # a committed enqueue survives a crash
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- enqueue -------------------------------------------------------------------

    def record(self, finding: Finding, targets: list[Planned], now: float | None = None) -> int:
        """Enqueue what this finding version means for each receiver; returns how many.

        Open and not yet announced (or announced resolved): a trigger. Open and
        announced, at a higher severity: a trigger again (an escalation). Resolved and
        announced open: a resolve (when the route sends resolved). Anything else:
        nothing — a replayed or merely updated finding pages no one again.
        """
        now = time.time() if now is None else now
        data = json.dumps(finding.as_dict(), separators=(",", ":"), sort_keys=True)
        added = 0
        with self._transaction() as db:
            for target in targets:
                row = db.execute(
                    "SELECT state, severity FROM notification_log "
                    "WHERE finding_id = ? AND receiver = ?",
                    (finding.id, target.receiver),
                ).fetchone()
                event = _event_for(finding, row)
                if event is None:
                    continue
                state = "resolved" if event == "resolve" else "open"
                db.execute(
                    "INSERT INTO notification_log (finding_id, receiver, route, state, severity, "
                    "finding, notified_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (finding_id, receiver) DO UPDATE SET state = excluded.state, "
                    "severity = excluded.severity, finding = excluded.finding, "
                    "notified_at = excluded.notified_at",
                    (finding.id, target.receiver, target.route, state, finding.severity, data, now),
                )
                if event == "resolve" and not target.send_resolved:
                    continue
                self._insert(db, finding.id, finding.tenant, finding.kind, target, event, data, now)
                added += 1
        return added

    def due_repeats(self, intervals: dict[str, float], now: float | None = None) -> int:
        """Enqueue a repeat for each finding still open past its route's repeat interval."""
        now = time.time() if now is None else now
        added = 0
        with self._transaction() as db:
            rows = db.execute(
                "SELECT finding_id, receiver, route, finding, notified_at FROM notification_log "
                "WHERE state = 'open'"
            ).fetchall()
            for finding_id, receiver, route, data, notified_at in rows:
                interval = intervals.get(route)
                if interval is None or now - notified_at < interval:
                    continue
                finding = json.loads(data)
                db.execute(
                    "UPDATE notification_log SET notified_at = ? WHERE finding_id = ? "
                    "AND receiver = ?",
                    (now, finding_id, receiver),
                )
                target = Planned(receiver, route, send_resolved=True)
                self._insert(
                    db, finding_id, finding["tenant"], finding["kind"], target, "repeat", data, now
                )
                added += 1
        return added

    @staticmethod
    def _insert(
        db: sqlite3.Connection,
        finding_id: str,
        tenant: str,
        kind: str,
        target: Planned,
        event: str,
        data: str,
        now: float,
    ) -> None:
        seq = db.execute(
            "SELECT coalesce(max(seq), 0) + 1 FROM notifications WHERE finding_id = ? "
            "AND receiver = ?",
            (finding_id, target.receiver),
        ).fetchone()[0]
        notification_id = hashlib.blake2b(
            f"{finding_id}\x00{target.receiver}\x00{seq}".encode(), digest_size=12
        ).hexdigest()
        db.execute(
            "INSERT INTO notifications (id, seq, finding_id, tenant, kind, receiver, route, event, "
            "finding, status, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            (
                notification_id,
                seq,
                finding_id,
                tenant,
                kind,
                target.receiver,
                target.route,
                event,
                data,
                now,
                _send_at(db, target, tenant, data, now) if event == "trigger" else now,
            ),
        )

    # -- delivery ------------------------------------------------------------------

    def due(self, receiver: str, now: float | None = None, limit: int = 20) -> list[Notification]:
        """A receiver's pending notifications whose time has come, oldest first, each
        the earliest pending one for its finding."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT n.id, n.seq, n.finding_id, n.tenant, n.receiver, n.route, n.event, "
                "n.finding, n.attempts, n.created_at FROM notifications n "
                "WHERE n.receiver = ? AND n.status = 'pending' AND n.next_attempt_at <= ? "
                "AND NOT EXISTS ("
                "SELECT 1 FROM notifications e WHERE e.finding_id = n.finding_id "
                "AND e.receiver = n.receiver AND e.status = 'pending' AND e.seq < n.seq) "
                "ORDER BY n.next_attempt_at, n.created_at, n.seq LIMIT ?",
                (receiver, now, limit),
            ).fetchall()
        return [
            Notification(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9])
            for r in rows
        ]

    def next_due_at(self, receiver: str) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT min(next_attempt_at) FROM notifications WHERE receiver = ? "
                "AND status = 'pending'",
                (receiver,),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def mark_sent(self, notification_id: str, status_code: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'sent', attempts = attempts + 1, sent_at = ?, "
                "last_status_code = ?, last_error = '' WHERE id = ?",
                (now, status_code, notification_id),
            )

    def mark_retry(
        self, notification_id: str, at: float, status_code: int | None, error: str
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = ?, "
                "last_status_code = ?, last_error = ? WHERE id = ?",
                (at, status_code, error[:1000], notification_id),
            )

    def mark_failed(self, notification_id: str, status_code: int | None, error: str) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE notifications SET status = 'failed', attempts = attempts + 1, "
                "last_status_code = ?, last_error = ? WHERE id = ?",
                (status_code, error[:1000], notification_id),
            )

    # -- reading -------------------------------------------------------------------

    def deliveries(
        self,
        tenant: str | None = None,
        finding_id: str | None = None,
        receiver: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The delivery log, newest first (for GET /api/v1/alerts)."""
        where, params = ["1"], []
        for column, value in (
            ("tenant", tenant),
            ("finding_id", finding_id),
            ("receiver", receiver),
            ("status", status),
        ):
            if value is not None:
                where.append(f"{column} = ?")  # column names are ours, values bound
                params.append(value)
        with self._lock:
            cursor = self._db.execute(
                "SELECT id, finding_id, tenant, kind, receiver, route, event, status, attempts, "
                "created_at, next_attempt_at, sent_at, last_status_code, last_error "
                f"FROM notifications WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, seq DESC LIMIT ?",
                (*params, limit),
            )
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def pending_count(self) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count() FROM notifications WHERE status = 'pending'"
            ).fetchone()
        return int(row[0])


def _send_at(db: sqlite3.Connection, target: Planned, tenant: str, data: str, now: float) -> float:
    """When a trigger goes out: now, or — grouping — with its group's first one."""
    if target.hold_s <= 0:
        return now
    agent = json.loads(data).get("agent_name", "")
    row = db.execute(
        "SELECT min(next_attempt_at) FROM notifications WHERE receiver = ? AND route = ? "
        "AND tenant = ? AND status = 'pending' AND event = 'trigger' AND attempts = 0 "
        "AND json_extract(finding, '$.agent_name') = ? AND next_attempt_at > ?",
        (target.receiver, target.route, tenant, agent, now),
    ).fetchone()
    # Joining a group that has not gone out yet: leave with it, so it is one message.
    return float(row[0]) if row[0] is not None else now + target.hold_s


def _event_for(finding: Finding, logged: tuple[str, str] | None) -> str | None:
    if finding.state == "open":
        if logged is None or logged[0] == "resolved":
            return "trigger"
        if _SEVERITY_RANK.get(finding.severity, 0) > _SEVERITY_RANK.get(logged[1], 0):
            return "trigger"  # escalated
        return None
    if logged is not None and logged[0] == "open":
        return "resolve"
    return None

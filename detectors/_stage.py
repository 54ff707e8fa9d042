"""The detectors inside `agentwatch serve`: fed by ingest, ticked by the clock, saved.

- `consume(segment)`: ingest hands over every log segment once it is stored; the
  detector core (detectors/_core.py; in `serve`, a separate process, so detecting
  does not share the GIL with the receivers) reads its spans and feeds them.
- A ticker calls `tick(now)` every second with the ingest watermark as `now` — the
  time before which every accepted span has been fed — so a store outage or a replay
  does not look like agents falling silent.
- `checkpoint()` saves the detectors' state and the last segment fed, atomically.
  Ingest deletes segments only after a checkpoint, so a crash replays exactly what
  the saved state lacks; segments the state already has are skipped. If the detector
  process dies, it is restarted from the last save and fed the segments since.
- Findings go to the `findings` table; while the store refuses them they are kept
  (and saved with the state) and written later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from detectors._core import CoreClient, CoreProcessDied
from detectors._findings import Finding
from ingest import Segment
from ingest._spacing import CostSpacing

log = logging.getLogger("agentwatch.detectors")

FINDING_COLUMNS = (
    "TenantId",
    "Id",
    "Kind",
    "State",
    "Severity",
    "AgentName",
    "ServiceName",
    "ToolName",
    "TraceId",
    "RunId",
    "OpenedAt",
    "UpdatedAt",
    "ResolvedAt",
    "Summary",
    "Evidence",
    "Version",
)


class RowStore(Protocol):
    def insert_rows(
        self, table: str, column_names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None: ...


class DetectorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.spans_fed = Counter(
            "agentwatch_detector_spans", "Spans fed to the detectors", registry=registry
        )
        self.tick_time = Gauge(
            "agentwatch_detector_tick_time_seconds",
            "The event time the detectors last ticked at (the ingest watermark)",
            registry=registry,
        )
        self.findings = Counter(
            "agentwatch_findings",
            "Finding versions published, by kind and state",
            ["kind", "state"],
            registry=registry,
        )
        self.unwritten = Gauge(
            "agentwatch_findings_unwritten",
            "Finding versions waiting for the store",
            registry=registry,
        )


def finding_row(finding: Finding) -> list[Any]:
    return [
        finding.tenant,
        finding.id,
        finding.kind,
        finding.state,
        finding.severity,
        finding.agent_name,
        finding.service_name,
        finding.tool_name,
        finding.trace_id,
        finding.run_id,
        _datetime(finding.opened_at_ns),
        _datetime(finding.updated_at_ns),
        _datetime(finding.resolved_at_ns) if finding.resolved_at_ns else None,
        finding.summary,
        json.dumps(finding.evidence, separators=(",", ":"), ensure_ascii=False),
        finding.version,
    ]


def _datetime(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


class DetectorStage:
    def __init__(
        self,
        core: CoreClient,
        store: RowStore,
        watermark_s: Callable[[], float] = time.time,
        tick_interval_s: float = 1.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._core = core
        self._store = store
        self._watermark_s = watermark_s
        self._tick_interval_s = tick_interval_s
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-findings")
        self._unwritten: dict[str, Finding] = {}
        # Segments fed since the last save: a restarted detector process gets them again.
        self._fed_since_save: list[tuple[str, str, int]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._store_failing = False
        self._listeners: list[Callable[[Finding], None]] = []
        self._jobs: list[dict[str, Any]] | None = None  # re-sent to a restarted process
        self._tick_decided = False  # a tick published findings the last save lacks
        self._saves = CostSpacing(clock)
        self.metrics = DetectorMetrics(registry or CollectorRegistry())

    def add_listener(self, listener: Callable[[Finding], None]) -> None:
        """Also tell `listener` (alerting) of every finding version, as it is published.

        Versions may come again after a restart (the detectors re-derive them from the
        log); a listener must treat a version it has seen as a no-op.
        """
        self._listeners.append(listener)

    async def start(self) -> None:
        await self._core.start()
        self._queue(await self._core.call("load"), keep_newer=False)
        self._ticker = asyncio.create_task(self._tick_loop(), name="agentwatch-detector-tick")

    async def shutdown(self) -> None:
        """Stop ticking, write what is pending and save the state. Idempotent."""
        if self._ticker is None:
            return
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        self._ticker = None
        try:
            await self.checkpoint()
        finally:
            await self._core.stop()
            self._writer.shutdown(wait=True)

    async def set_jobs(self, jobs: list[dict[str, Any]] | None) -> None:
        """Hand the detectors the agents' job descriptions (plain data; None: none)."""
        self._jobs = jobs
        self._queue(await self._call("set_jobs", jobs))

    async def consume(self, segment: Segment) -> None:
        fed = (str(segment.path), segment.wal_id, segment.number)
        spans, findings = await self._call("feed", *fed)
        self._fed_since_save.append(fed)
        self.metrics.spans_fed.inc(spans)
        self._queue(findings)
        await self._flush()

    async def checkpoint(self) -> None:
        await self._flush()
        with self._saves.timed():
            await self._call("save", [finding.as_dict() for finding in self._unwritten.values()])
        self._tick_decided = False
        self._fed_since_save.clear()

    async def tick(self, now_ns: int) -> None:
        findings = await self._call("tick", now_ns)
        self.metrics.tick_time.set(now_ns / 1e9)
        if findings:
            self._queue(findings)
            self._tick_decided = True
            await self._flush()
        # What a tick decides is not in the log, so a replay cannot redo it at the same
        # moment: it is saved soon, or a crash could forget an opened finding. At once
        # while a finding is not in the store yet; else once the save is due, as a
        # big state takes a second to save and a tick may find something every second.
        if self._tick_decided and (self._unwritten or self._saves.due()):
            await self.checkpoint()

    async def _call(self, method: str, *args: Any) -> Any:
        try:
            return await self._core.call(method, *args)
        except CoreProcessDied as exc:
            log.error("%s; restarting it from its saved state", exc)
        # The new process restores the last save; what was fed since is fed again.
        self._queue(await self._core.call("load"), keep_newer=True)
        if self._jobs is not None:
            self._queue(await self._core.call("set_jobs", self._jobs), keep_newer=True)
        for fed in self._fed_since_save:
            self._queue((await self._core.call("feed", *fed))[1])
        return await self._core.call(method, *args)

    def _queue(self, findings: list[dict[str, Any]], keep_newer: bool = False) -> None:
        """Queue finding versions for the store (a newer queued version wins if asked)."""
        for data in findings:
            finding = Finding.from_dict(data)
            queued = self._unwritten.get(finding.id)
            if keep_newer and queued is not None and queued.version >= finding.version:
                continue
            self._unwritten[finding.id] = finding
            self.metrics.findings.labels(finding.kind, finding.state).inc()
            for listener in self._listeners:
                try:
                    listener(finding)
                except Exception:  # alerting trouble must never stop the detectors
                    log.exception("finding listener failed on %s", finding.id)
        self.metrics.unwritten.set(len(self._unwritten))

    def _write(self) -> None:
        if not self._unwritten:
            return
        findings = list(self._unwritten.values())
        self._store.insert_rows("findings", FINDING_COLUMNS, [finding_row(f) for f in findings])
        for finding in findings:
            if self._unwritten.get(finding.id) is finding:
                del self._unwritten[finding.id]
        self.metrics.unwritten.set(len(self._unwritten))

    async def _flush(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self._writer, self._write)
        except Exception as exc:  # the store is down: keep them, write them later
            if not self._store_failing:
                log.warning("cannot write %d finding(s) yet: %s", len(self._unwritten), exc)
            self._store_failing = True
        else:
            if self._store_failing:
                log.warning("findings are being written again")
            self._store_failing = False

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval_s)
            now_s = min(time.time(), self._watermark_s())
            try:
                await self.tick(int(now_s * 1e9))
            except Exception:
                log.exception("detector tick failed")

"""The detectors inside `agentwatch serve`: fed by ingest, ticked by the clock, saved.

- `consume(segment)`: ingest hands over every log segment once it is stored; the
  spans are read from it and fed to the detectors (on one worker thread, so the
  event loop keeps serving exports).
- A ticker calls `tick(now)` every second with the ingest watermark as `now` — the
  time before which every accepted span has been fed — so a store outage or a replay
  does not look like agents falling silent.
- `checkpoint()` saves the detectors' state and the last segment fed, atomically.
  Ingest deletes segments only after a checkpoint, so a crash replays exactly what
  the saved state lacks; segments the state already has are skipped.
- Findings go to the `findings` table; while the store refuses them they are kept
  (and saved with the state) and written later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from detectors._engine import DetectorEngine
from detectors._findings import Finding
from ingest import Segment, read_agent_spans

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
_STATE_VERSION = 1


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
        engine: DetectorEngine,
        store: RowStore,
        state_path: Path,
        watermark_s: Callable[[], float] = time.time,
        tick_interval_s: float = 1.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
        self._state_path = state_path
        self._watermark_s = watermark_s
        self._tick_interval_s = tick_interval_s
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-detectors")
        self._position: tuple[str, int] = ("", 0)  # (wal id, number) of the last segment fed
        self._unwritten: dict[str, Finding] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._store_failing = False
        self.metrics = DetectorMetrics(registry or CollectorRegistry())

    async def start(self) -> None:
        await self._run(self._load_state)
        self._ticker = asyncio.create_task(self._tick_loop(), name="agentwatch-detector-tick")

    async def shutdown(self) -> None:
        """Stop ticking, write what is pending and save the state. Idempotent."""
        if self._ticker is None:
            return
        self._ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._ticker
        self._ticker = None
        await self.checkpoint()
        self._worker.shutdown(wait=True)

    async def consume(self, segment: Segment) -> None:
        wal_id, number = self._position
        if segment.wal_id == wal_id and segment.number <= number:
            return  # a replayed segment the saved state already includes
        await self._run(self._feed, segment)
        await self._flush()

    async def checkpoint(self) -> None:
        await self._flush()
        await self._run(self._save_state)

    async def tick(self, now_ns: int) -> None:
        changed = await self._run(self._tick, now_ns)
        self.metrics.tick_time.set(now_ns / 1e9)
        if changed:
            # What a tick decides is not in the log, so a replay cannot redo it at the
            # same moment: save it now, or a crash could forget an opened finding.
            await self.checkpoint()

    def _tick(self, now_ns: int) -> bool:
        self._engine.tick(now_ns)
        return self._collect() > 0

    # -- on the worker thread --------------------------------------------------------

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._worker, function, *args)

    def _feed(self, segment: Segment) -> None:
        spans = read_agent_spans(segment.path)
        self._engine.consume(spans)
        self.metrics.spans_fed.inc(len(spans))
        self._position = (segment.wal_id, segment.number)
        self._collect()

    def _collect(self) -> int:
        """Move newly published findings to the write queue; return how many."""
        taken = self._engine.take_findings()
        for finding in taken:
            self._unwritten[finding.id] = finding
            self.metrics.findings.labels(finding.kind, finding.state).inc()
        self.metrics.unwritten.set(len(self._unwritten))
        return len(taken)

    def _write(self) -> None:
        self._collect()
        if not self._unwritten:
            return
        findings = list(self._unwritten.values())
        self._store.insert_rows("findings", FINDING_COLUMNS, [finding_row(f) for f in findings])
        for finding in findings:
            if self._unwritten.get(finding.id) is finding:
                del self._unwritten[finding.id]
        self.metrics.unwritten.set(len(self._unwritten))

    def _save_state(self) -> None:
        self._collect()
        state = {
            "version": _STATE_VERSION,
            "position": list(self._position),
            "detectors": self._engine.snapshot(),
            "unwritten": [finding.as_dict() for finding in self._unwritten.values()],
        }
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._state_path.with_suffix(".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            json.dump(state, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._state_path)

    def _load_state(self) -> None:
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("detector state %s unreadable, starting fresh: %s", self._state_path, exc)
            return
        if state.get("version") != _STATE_VERSION:
            log.warning("detector state %s has another version, starting fresh", self._state_path)
            return
        wal_id, number = state.get("position", ["", 0])
        self._position = (wal_id, int(number))
        self._engine.restore(state.get("detectors", {}))
        for data in state.get("unwritten", []):
            finding = Finding.from_dict(data)
            self._unwritten[finding.id] = finding

    # -- on the event loop -----------------------------------------------------------

    async def _flush(self) -> None:
        try:
            await self._run(self._write)
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

"""The ingest pipeline: accepted request (spans or logs) -> write-ahead log -> ClickHouse.

`accept()` runs on the event loop: it derives what needs cross-request memory (the
agent and run of each span, from enclosing spans) and appends one record to the log;
it returns once the record is durable, which is when the client gets its OK. A
background task hands each sealed log segment to the store — ClickHouse parses and
normalizes the records itself — retries with backoff while the store is failing, and
deletes the segment only after the insert is confirmed.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ingest._enclosing import EnclosingResolver
from ingest._errors import PermanentStoreError, TransientStoreError
from ingest._logs import build_logs_record, log_record_count
from ingest._metrics import IngestMetrics
from ingest._resolve import build_record
from ingest._spacing import CostSpacing
from ingest._translate import span_count
from ingest._wal import Segment, WalConfig, WriteAheadLog

log = logging.getLogger("agentwatch.ingest")


class SpanStore(Protocol):
    """Where sealed log segments go (ClickHouseStore, or a wrapper around it)."""

    def insert_segment(self, path: Path, dedup_token: str) -> None: ...


class SegmentConsumer(Protocol):
    """A downstream stage (the detectors): told about every segment once it is stored.

    `checkpoint()` makes what the consumer derived from the segments so far durable;
    only then are those segments deleted, so after a crash every segment the consumer
    may not have saved is replayed to it (`Segment.number` tells replays apart).
    """

    async def consume(self, segment: Segment) -> None: ...

    async def checkpoint(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    wal: WalConfig = field(default_factory=WalConfig)
    retry_initial_s: float = 0.2
    retry_max_s: float = 30.0
    drain_timeout_s: float = 30.0
    checkpoint_interval_s: float = 5.0


class IngestPipeline:
    def __init__(
        self,
        store: SpanStore,
        config: PipelineConfig,
        metrics: IngestMetrics,
        data_dir: Path,
        consumers: Sequence[SegmentConsumer] = (),
    ) -> None:
        self._store = store
        self._config = config
        self._metrics = metrics
        self._dead_letter_dir = data_dir / "deadletter"
        self._consumers = list(consumers)
        self._wal = WriteAheadLog(data_dir / "wal", config.wal, metrics)
        self._resolver = EnclosingResolver()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-store")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._log_closed = False
        self._drain_deadline = float("inf")
        # Taken from the log, not yet through the consumers (being stored, or queued).
        self._unconsumed: collections.deque[Segment] = collections.deque()
        # Stored, for the consumers: a second task, so the next insert overlaps with
        # the detectors' work; bounded, so the store never runs far ahead of them.
        self._stored: asyncio.Queue[Segment | None] = asyncio.Queue(maxsize=2)
        self._consume_task: asyncio.Task[None] | None = None
        self._unreleased: list[Segment] = []  # consumed, awaiting the consumers' checkpoint
        self._checkpoints = CostSpacing()
        self.store_healthy = True

    @property
    def backlog_segments(self) -> int:
        return self._wal.sealed_backlog()

    def readiness_problems(self) -> list[str]:
        """Why this pipeline cannot take and store spans right now (empty: it can)."""
        problems = []
        if not self.store_healthy:
            problems.append("store inserts are failing")
        if self._wal.disk_bytes >= self._config.wal.max_bytes:
            problems.append("write-ahead log is full")
        if self._closing:
            problems.append("shutting down")
        return problems

    def add_consumer(self, consumer: SegmentConsumer) -> None:
        """Hand every stored segment to `consumer` too (before `start()`)."""
        self._consumers.append(consumer)

    def consumed_until_s(self) -> float:
        """Wall-clock time before which every accepted record has reached the consumers.

        Detectors tick with this rather than the clock, so a store outage (or a replay
        after a restart) does not look like agents going silent.
        """
        candidates = [self._wal.oldest_unsealed_or_queued_s()]
        if self._unconsumed:
            candidates.append(self._unconsumed[0].first_write_s)
        known = [moment for moment in candidates if moment is not None]
        return min(known) if known else time.time()

    async def start(self) -> None:
        await self._wal.open()
        self._task = asyncio.create_task(self._store_loop(), name="agentwatch-store")
        self._consume_task = asyncio.create_task(self._consume_loop(), name="agentwatch-consume")

    async def accept(
        self, tenant: str, request: ExportTraceServiceRequest, raw: bytes | None = None
    ) -> int:
        """Make `request` durable (raise OverloadedError when there is no room).

        `raw` is the request's wire bytes when the receiver still has them and they
        match `request` (nothing was dropped); otherwise the request is re-encoded.
        """
        spans = span_count(request)
        if not spans:
            return 0
        await self._wal.append(build_record(tenant, request, self._resolver, raw), spans)
        return spans

    async def accept_logs(
        self, tenant: str, request: ExportLogsServiceRequest, raw: bytes | None = None
    ) -> int:
        """Make a logs request durable, in the same log as spans (raise OverloadedError).

        Same log, same segments: one durability path, and the detectors read a log
        record in order with the spans around it.
        """
        records = log_record_count(request)
        if not records:
            return 0
        # Counted as 0 spans: a segment's span count feeds the span metrics.
        await self._wal.append(build_logs_record(tenant, request, raw), 0)
        return records

    async def shutdown(self) -> None:
        """Stop taking requests, store every accepted span, then stop. Idempotent.

        While the store is down the drain waits up to `drain_timeout_s`, then leaves
        the remaining segments on disk: the next start replays them.
        """
        if self._closing:
            return
        self._closing = True
        await self._wal.close()
        self._log_closed = True  # from here on, no segment can be sealed any more
        self._drain_deadline = time.monotonic() + self._config.drain_timeout_s
        if self._task is not None:
            await self._task
        if self._consume_task is not None:
            await self._consume_task
        self._writer.shutdown(wait=True)

    async def _store_loop(self) -> None:
        try:
            while not (self._log_closed and self._wal.sealed_backlog() == 0):
                try:
                    segment = await asyncio.wait_for(self._wal.next_sealed(), timeout=0.2)
                except TimeoutError:
                    continue
                self._unconsumed.append(segment)
                self._metrics.wal_lag_segments.set(self._wal.sealed_backlog())
                outcome = await self._store_segment(segment)
                if outcome is _Outcome.STORED:
                    await self._stored.put(segment)
                    continue
                self._unconsumed.remove(segment)
                if outcome is _Outcome.GAVE_UP:
                    log.warning(
                        "store still failing at shutdown: %d log segment(s) left for the next "
                        "start",
                        self._wal.sealed_backlog() + 1,
                    )
                    return
        finally:
            await self._stored.put(None)

    async def _consume_loop(self) -> None:
        """Hand stored segments to the consumers; release them after their checkpoint."""
        try:
            while True:
                try:
                    segment = await asyncio.wait_for(self._stored.get(), timeout=0.2)
                except TimeoutError:
                    await self._release_consumed(force=False)
                    continue
                if segment is None:
                    return
                await self._hand_to_consumers(segment)
                self._unconsumed.remove(segment)
                self._unreleased.append(segment)
                await self._release_consumed(force=False)
        finally:
            await self._release_consumed(force=True)

    async def _hand_to_consumers(self, segment: Segment) -> None:
        for consumer in self._consumers:
            try:
                await consumer.consume(segment)
            except Exception:  # a detector bug must never stop ingest
                log.exception("consumer %s failed on log segment %d", consumer, segment.number)

    async def _release_consumed(self, force: bool) -> None:
        """Delete stored segments once every consumer has checkpointed what it took."""
        if not self._unreleased:
            return
        # A checkpoint saves the detectors' whole state, which grows with the traffic:
        # spaced by its cost, but due when the segments it would free fill a quarter
        # of the log's room.
        due = (
            self._checkpoints.due(self._config.checkpoint_interval_s)
            or sum(segment.size for segment in self._unreleased) * 4 >= self._config.wal.max_bytes
        )
        if self._consumers and not (force or due):
            return
        try:
            with self._checkpoints.timed():
                for consumer in self._consumers:
                    await consumer.checkpoint()
        except Exception:
            log.exception("consumer checkpoint failed; keeping the log segments for replay")
            return
        for segment in self._unreleased:
            self._wal.release(segment)
        self._unreleased.clear()

    async def _store_segment(self, segment: Segment) -> _Outcome:
        """Insert until it succeeds; a segment refused for good goes to the dead letters."""
        loop = asyncio.get_running_loop()
        delay = self._config.retry_initial_s
        while True:
            started = time.monotonic()
            try:
                await loop.run_in_executor(
                    self._writer, self._store.insert_segment, segment.path, segment.dedup_token
                )
            except PermanentStoreError as exc:
                self._metrics.store_write_failures.labels("permanent").inc()
                target = self._wal.set_aside(segment, self._dead_letter_dir)
                self._metrics.dead_lettered_batches.inc()
                self._metrics.dead_lettered_spans.inc(segment.spans)
                log.error("store refused log segment for good, moved to %s: %s", target, exc)
                return _Outcome.DEAD_LETTERED
            except TransientStoreError as exc:
                self._metrics.store_write_failures.labels("transient").inc()
                if self.store_healthy:
                    log.warning("store insert failed, retrying with backoff: %s", exc)
                self.store_healthy = False
                pause = delay * random.uniform(0.5, 1.0)
                if self._log_closed:
                    left = self._drain_deadline - time.monotonic()
                    if left <= 0:
                        return _Outcome.GAVE_UP
                    pause = min(pause, left)
                await asyncio.sleep(pause)
                delay = min(delay * 2, self._config.retry_max_s)
                continue
            self._metrics.store_write_seconds.observe(time.monotonic() - started)
            self._metrics.spans_stored.inc(segment.spans)
            if not self.store_healthy:
                log.warning("store is accepting inserts again")
            self.store_healthy = True
            return _Outcome.STORED


class _Outcome(enum.Enum):
    STORED = "stored"
    DEAD_LETTERED = "dead_lettered"
    GAVE_UP = "gave_up"  # shutting down with the store still failing

"""The ingest pipeline: accepted requests -> translated batches -> store -> detectors.

Two stages, each on its own thread so the event loop (and the receivers on it) stays
responsive: translation (pure Python, CPU) and the store insert (chDB releases the
GIL). They overlap: batch N+1 is translated while batch N is written.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ingest._batch import SpanBatch
from ingest._enclosing import EnclosingResolver
from ingest._errors import OverloadedError, PermanentStoreError, TransientStoreError
from ingest._metrics import IngestMetrics
from ingest._translate import span_count, translate

log = logging.getLogger("agentwatch.ingest")


class SpanStore(Protocol):
    def insert_spans(self, batch: SpanBatch, dedup_token: str | None = None) -> None: ...


class BatchConsumer(Protocol):
    """A downstream stage (a detector runner): sees every stored batch once."""

    async def consume(self, batch: SpanBatch) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    batch_max_spans: int = 10_000
    flush_interval_s: float = 1.0
    queue_max_spans: int = 200_000
    retry_initial_s: float = 0.2
    retry_max_s: float = 30.0


@dataclass(frozen=True, slots=True)
class _Accepted:
    tenant: str
    request: ExportTraceServiceRequest
    spans: int


_STOP = object()


class IngestPipeline:
    """`accept()` enqueues a validated request; background tasks store it in batches."""

    def __init__(
        self,
        store: SpanStore,
        config: PipelineConfig,
        metrics: IngestMetrics,
        dead_letter_dir: Path,
        consumers: Sequence[BatchConsumer] = (),
    ) -> None:
        self._store = store
        self._config = config
        self._metrics = metrics
        self._dead_letter_dir = dead_letter_dir
        self._consumers = list(consumers)
        self._inbox: asyncio.Queue[_Accepted | object] = asyncio.Queue()
        self._batches: asyncio.Queue[SpanBatch | object] = asyncio.Queue(maxsize=2)
        self._pending_spans = 0
        self._resolver = EnclosingResolver()
        self._translator = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-translate")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-store")
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self.store_healthy = True

    @property
    def pending_spans(self) -> int:
        return self._pending_spans

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._translate_loop(), name="agentwatch-translate"),
            asyncio.create_task(self._write_loop(), name="agentwatch-write"),
        ]

    async def accept(self, tenant: str, request: ExportTraceServiceRequest) -> int:
        """Take ownership of `request`; raise OverloadedError when there is no room."""
        spans = span_count(request)
        if self._closing:
            raise OverloadedError("agentwatch is shutting down", retry_after_s=5.0)
        if spans and self._pending_spans + spans > self._config.queue_max_spans:
            raise OverloadedError("ingest queue is full", retry_after_s=1.0)
        if spans:
            self._pending_spans += spans
            self._metrics.queue_spans.set(self._pending_spans)
            self._inbox.put_nowait(_Accepted(tenant, request, spans))
        return spans

    async def shutdown(self) -> None:
        """Stop accepting, store everything already accepted, then stop. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._inbox.put_nowait(_STOP)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._translator.shutdown(wait=True)
        self._writer.shutdown(wait=True)

    async def _translate_loop(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            items, stopping = await self._collect()
            if items:
                batch = await loop.run_in_executor(self._translator, self._translate, items)
                await self._batches.put(batch)
        await self._batches.put(_STOP)

    async def _collect(self) -> tuple[list[_Accepted], bool]:
        """Wait for work, then gather until the batch is full or the flush interval ends."""
        first = await self._inbox.get()
        if first is _STOP:
            return [], True
        assert isinstance(first, _Accepted)
        items, spans = [first], first.spans
        deadline = time.monotonic() + self._config.flush_interval_s
        while spans < self._config.batch_max_spans:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                break
            try:
                item = await asyncio.wait_for(self._inbox.get(), timeout)
            except TimeoutError:
                break
            if item is _STOP:
                return items, True
            assert isinstance(item, _Accepted)
            items.append(item)
            spans += item.spans
        return items, False

    def _translate(self, items: list[_Accepted]) -> SpanBatch:
        batch = SpanBatch()
        for item in items:
            batch.extend(translate(item.request, item.tenant, self._resolver))
        return batch

    async def _write_loop(self) -> None:
        while True:
            batch = await self._batches.get()
            if batch is _STOP:
                return
            assert isinstance(batch, SpanBatch)
            await self._write_with_retry(batch)
            self._pending_spans -= len(batch)
            self._metrics.queue_spans.set(self._pending_spans)
            for consumer in self._consumers:
                await consumer.consume(batch)

    async def _write_with_retry(self, batch: SpanBatch) -> None:
        loop = asyncio.get_running_loop()
        delay = self._config.retry_initial_s
        while True:
            started = time.monotonic()
            try:
                await loop.run_in_executor(self._writer, self._store.insert_spans, batch, None)
            except PermanentStoreError as exc:
                self._metrics.store_write_failures.labels("permanent").inc()
                await loop.run_in_executor(self._writer, self._dead_letter, batch, str(exc))
                return
            except TransientStoreError as exc:
                self._metrics.store_write_failures.labels("transient").inc()
                if self.store_healthy:
                    log.warning("store insert failed, retrying with backoff: %s", exc)
                self.store_healthy = False
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self._config.retry_max_s)
                continue
            self._metrics.store_write_seconds.observe(time.monotonic() - started)
            self._metrics.spans_stored.inc(len(batch))
            if not self.store_healthy:
                log.warning("store is accepting inserts again")
            self.store_healthy = True
            return

    def _dead_letter(self, batch: SpanBatch, reason: str) -> None:
        """Keep a batch the store refuses for good, readable, and move on."""
        self._dead_letter_dir.mkdir(parents=True, exist_ok=True)
        path = self._dead_letter_dir / f"{time.time_ns()}.jsonl"
        with path.open("w", encoding="utf-8") as out:
            out.write(json.dumps({"reason": reason, "spans": len(batch)}) + "\n")
            for index in range(len(batch)):
                out.write(json.dumps(batch.row(index), default=str) + "\n")
        self._metrics.dead_lettered_batches.inc()
        self._metrics.dead_lettered_spans.inc(len(batch))
        log.error("dead-lettered a batch of %d spans to %s: %s", len(batch), path, reason)

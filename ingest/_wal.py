"""The write-ahead log: an export is acknowledged only once its spans are on disk.

Records are length-prefixed protobuf messages (see `_wal_record.py`), which is also
ClickHouse's `Protobuf` input format: a sealed segment file is handed to the store
as is. Concurrent exports share one fsync (group commit): while one group is being
written and synced, the next one gathers.

    wal/
      wal-id                      random id (renewed when the log starts empty)
      00000000000000000007.seg    sealed: waiting for the store (or being inserted)
      00000000000000000008.seg    active: being appended to

A segment is deleted only after the store confirmed its insert; every segment
still on disk at start-up is replayed. The insert's dedup token is
`<wal-id>-<segment number>`, so replaying a segment that was stored just before a
crash inserts nothing twice, and no token is ever used for two different segments.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ingest._errors import OverloadedError
from ingest._metrics import IngestMetrics
from ingest._translate import span_count
from ingest._wal_record import read_varint

log = logging.getLogger("agentwatch.wal")

_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class Segment:
    """A sealed log segment: a file of records the store has not confirmed yet."""

    path: Path
    number: int
    spans: int
    size: int
    dedup_token: str
    # Wall-clock time of its first record (0: unknown, a segment left by the last run).
    first_write_s: float = 0.0

    @property
    def wal_id(self) -> str:
        return self.dedup_token.rsplit("-", 1)[0]


@dataclass(frozen=True, slots=True)
class WalConfig:
    max_bytes: int = 2 * 1024**3
    max_pending_bytes: int = 256 * 1024**2
    seal_spans: int = 50_000
    seal_bytes: int = 32 * 1024**2
    seal_age_s: float = 1.0


class WriteAheadLog:
    def __init__(self, directory: Path, config: WalConfig, metrics: IngestMetrics) -> None:
        self._dir = directory
        self._config = config
        self._metrics = metrics
        self._io = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-wal")
        self._pending: list[tuple[bytes, int, asyncio.Future[None]]] = []
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._sealed: asyncio.Queue[Segment] = asyncio.Queue()
        self._sealed_view: collections.deque[Segment] = collections.deque()  # same order
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._ager: asyncio.Task[None] | None = None
        self._wal_id = ""
        self._fd = -1
        self._number = 0
        self._active_spans = 0
        self._active_bytes = 0
        self._active_since = 0.0
        self._active_first_write_s = 0.0
        self._disk_bytes = 0
        self._closing = False
        self._consumers_waiting = 0  # callers blocked in next_sealed

    # -- lifecycle -------------------------------------------------------------------

    async def open(self) -> None:
        """Recover what a previous run left (every segment is replayed), then start."""
        self._loop = asyncio.get_running_loop()
        replay = await self._loop.run_in_executor(self._io, self._recover)
        for segment in replay:
            self._enqueue_sealed(segment)
        await self._loop.run_in_executor(self._io, self._open_next_segment)
        self._flusher = asyncio.create_task(self._flush_loop(), name="agentwatch-wal-flush")
        self._ager = asyncio.create_task(self._seal_by_age_loop(), name="agentwatch-wal-age")
        self._update_gauges()

    async def close(self) -> None:
        """Write what is pending, seal the active segment, and stop. Idempotent."""
        if self._closing or self._loop is None:
            return
        self._closing = True
        self._wake.set()
        if self._flusher is not None:
            await self._flusher
        if self._ager is not None:
            self._ager.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ager
        await self._loop.run_in_executor(self._io, self._seal_active, False)
        self._io.shutdown(wait=True)

    @property
    def disk_bytes(self) -> int:
        return self._disk_bytes

    # -- appending -------------------------------------------------------------------

    async def append(self, framed: bytes, spans: int) -> None:
        """Return once `framed` is durable; OverloadedError when the log has no room."""
        if self._closing:
            raise OverloadedError("agentwatch is shutting down", retry_after_s=5.0)
        if self._disk_bytes + self._pending_bytes + len(framed) > self._config.max_bytes:
            raise OverloadedError("write-ahead log is full", retry_after_s=5.0)
        if self._pending_bytes + len(framed) > self._config.max_pending_bytes:
            raise OverloadedError("ingest queue is full", retry_after_s=1.0)
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        self._pending.append((framed, spans, done))
        self._pending_bytes += len(framed)
        self._wake.set()
        await done

    async def _flush_loop(self) -> None:
        assert self._loop is not None
        while True:
            if not self._pending:
                if self._closing:
                    return  # close() rejects new appends: nothing more can arrive
                await self._wake.wait()
                self._wake.clear()
                continue
            group, self._pending = self._pending, []
            try:
                await self._loop.run_in_executor(self._io, self._write_group, group)
            except OSError as exc:
                log.error("write-ahead log write failed: %s", exc)
                for _, _, done in group:
                    if not done.done():
                        done.set_exception(OverloadedError(f"cannot write log: {exc}", 5.0))
            else:
                for _, _, done in group:
                    # A caller that gave up (client gone: its task was cancelled) has a
                    # cancelled future; its record is durable all the same.
                    if not done.done():
                        done.set_result(None)
            finally:
                self._pending_bytes -= sum(len(framed) for framed, _, _ in group)
                self._update_gauges()

    async def _seal_by_age_loop(self) -> None:
        assert self._loop is not None
        interval = max(0.01, self._config.seal_age_s / 4)
        while True:
            await asyncio.sleep(interval)
            await self._loop.run_in_executor(
                self._io, self._seal_if_old, self._consumers_waiting > 0
            )

    # -- consuming -------------------------------------------------------------------

    async def next_sealed(self) -> Segment:
        """The oldest sealed segment, once there is one.

        The active segment is sealed by age only while its consumer waits here. Each
        insert has a fixed cost (ClickHouse analyses the query: ~0.3 s of CPU), so
        while the store is busy the segment goes on growing (to `seal_spans` or
        `seal_bytes`), and the next insert takes everything that came meanwhile.
        """
        assert self._loop is not None
        if self._sealed.empty():
            await self._loop.run_in_executor(self._io, self._seal_if_old, True)
        self._consumers_waiting += 1
        try:
            segment = await self._sealed.get()
        finally:
            self._consumers_waiting -= 1
        self._sealed_view.popleft()
        return segment

    def _enqueue_sealed(self, segment: Segment) -> None:
        self._sealed_view.append(segment)
        self._sealed.put_nowait(segment)

    def oldest_unsealed_or_queued_s(self) -> float | None:
        """When the oldest record not yet handed out by `next_sealed` was written."""
        if self._sealed_view:
            return self._sealed_view[0].first_write_s
        if self._active_bytes:
            return self._active_first_write_s
        return None

    def sealed_backlog(self) -> int:
        return self._sealed.qsize()

    def release(self, segment: Segment) -> None:
        """The store has this segment: delete it."""
        segment.path.unlink(missing_ok=True)
        self._disk_bytes -= segment.size
        self._update_gauges()

    def set_aside(self, segment: Segment, directory: Path) -> Path:
        """Move a segment the store refuses for good out of the log (dead letter)."""
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{self._wal_id}-{segment.path.name}"
        os.replace(segment.path, target)
        self._disk_bytes -= segment.size
        self._update_gauges()
        return target

    # -- the I/O thread --------------------------------------------------------------

    def _write_group(self, group: list[tuple[bytes, int, asyncio.Future[None]]]) -> None:
        if self._fd < 0:
            self._open_next_segment()  # starting one failed earlier: try again
        data = b"".join(framed for framed, _, _ in group)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Disk full or failing: cut the partial group so the framing stays intact.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._active_bytes)
            raise
        self._metrics.wal_fsyncs.inc()
        if not self._active_bytes:
            self._active_since = time.monotonic()
            self._active_first_write_s = time.time()
        self._active_bytes += len(data)
        self._active_spans += sum(spans for _, spans, _ in group)
        self._disk_bytes += len(data)
        if (
            self._active_spans >= self._config.seal_spans
            or self._active_bytes >= self._config.seal_bytes
        ):
            # The group is durable whatever happens now: a failure to start the next
            # segment must not tell its callers otherwise (they would send it again).
            try:
                self._seal_active(True)
            except OSError as exc:
                log.error("cannot start the next write-ahead log segment: %s", exc)

    def _seal_if_old(self, consumer_ready: bool) -> None:
        if not consumer_ready:
            return
        age = time.monotonic() - self._active_since
        if self._active_bytes and age >= self._config.seal_age_s and not self._closing:
            try:
                self._seal_active(True)
            except OSError as exc:  # the next write tries again
                log.error("cannot start the next write-ahead log segment: %s", exc)

    def _seal_active(self, reopen: bool) -> None:
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        with contextlib.suppress(OSError):  # every byte in it was fsynced already
            os.close(fd)
        if self._active_bytes:
            segment = Segment(
                path=self._segment_path(self._number),
                number=self._number,
                spans=self._active_spans,
                size=self._active_bytes,
                dedup_token=f"{self._wal_id}-{self._number}",
                first_write_s=self._active_first_write_s,
            )
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._enqueue_sealed, segment)
        else:
            self._segment_path(self._number).unlink(missing_ok=True)
        self._active_spans = 0
        self._active_bytes = 0
        if reopen:
            self._open_next_segment()

    def _open_next_segment(self) -> None:
        self._number += 1  # also on failure: a number is never used twice
        path = self._segment_path(self._number)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _fsync_directory(self._dir)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._active_spans = 0
        self._active_bytes = 0
        self._active_since = time.monotonic()

    def _segment_path(self, number: int) -> Path:
        return self._dir / f"{number:020d}{_SUFFIX}"

    def _recover(self) -> list[Segment]:
        self._dir.mkdir(parents=True, exist_ok=True)
        left: list[tuple[Path, int, int, int]] = []
        for path in sorted(self._dir.glob(f"*{_SUFFIX}")):
            number = int(path.stem)
            size, spans = _recover_segment(path)
            self._number = max(self._number, number)
            if size == 0:
                path.unlink()
                continue
            left.append((path, number, spans, size))
        id_file = self._dir / "wal-id"
        if left and id_file.exists():
            self._wal_id = id_file.read_text().strip()
        else:
            # Nothing to replay: every segment of the last run is stored (or set aside),
            # so no token of the old id will be used again. A fresh id keeps the new
            # tokens unique: once the log is empty, a clean shutdown leaves no file to
            # continue the numbering from, and a reused `<id>-<number>` would make
            # ClickHouse drop the new segment as a duplicate of an old one.
            self._wal_id = uuid.uuid4().hex
            temporary = id_file.with_suffix(".tmp")
            with temporary.open("w") as handle:
                handle.write(self._wal_id)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, id_file)
            _fsync_directory(self._dir)
        replay = [
            Segment(path, number, spans, size, dedup_token=f"{self._wal_id}-{number}")
            for path, number, spans, size in left
        ]
        self._disk_bytes += sum(segment.size for segment in replay)
        if replay:
            log.warning("replaying %d write-ahead log segment(s) left by the last run", len(replay))
        return replay

    def _update_gauges(self) -> None:
        self._metrics.wal_bytes.set(self._disk_bytes)
        self._metrics.wal_pending_bytes.set(self._pending_bytes)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _recover_segment(path: Path) -> tuple[int, int]:
    """(bytes, spans) of a segment left by the last run, cutting a half-written record.

    A torn record was never acknowledged (acks follow the fsync), so dropping it
    loses nothing a client was told is safe.
    """
    data = path.read_bytes()
    offset = spans = 0
    while offset < len(data):
        header = read_varint(data, offset)
        if header is None or header[1] + header[0] > len(data):
            break
        length, start = header
        try:
            spans += span_count(ExportTraceServiceRequest.FromString(data[start : start + length]))
        except DecodeError:
            break
        offset = start + length
    if offset != len(data):
        log.warning("truncating a torn record at byte %d of %s", offset, path.name)
        with path.open("r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())
    return offset, spans

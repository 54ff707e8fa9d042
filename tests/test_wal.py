"""The write-ahead log on a real disk: group commit, sealing, recovery, backpressure, close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ingest import EnclosingResolver, IngestMetrics, OverloadedError, Segment, WalConfig
from ingest._resolve import build_record
from ingest._wal import WriteAheadLog
from tests.otlp import make_request, make_span

T = TypeVar("T")

# Sealing only when a test asks for it: no span count, size or age reached by accident.
NEVER = WalConfig(seal_spans=10**9, seal_bytes=10**12, seal_age_s=3600.0)
DEADLINE_S = 10.0


def record(*names: str, padding: int = 0) -> bytes:
    """A framed log record (as the pipeline writes it) with one span per name."""
    attributes: dict[str, str | int] = {"padding": "x" * padding} if padding else {}
    spans = [make_span(name, attributes=attributes) for name in names]
    return build_record("default", make_request(spans), EnclosingResolver())


def read_records(path: Path) -> list[ExportTraceServiceRequest]:
    """Decode a segment file: varint length prefix, then the record (an OTLP request)."""
    data = path.read_bytes()
    records = []
    offset = 0
    while offset < len(data):
        length = shift = 0
        while True:
            byte = data[offset]
            offset += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        assert offset + length <= len(data), f"torn record at byte {offset} of {path.name}"
        records.append(ExportTraceServiceRequest.FromString(data[offset : offset + length]))
        offset += length
    return records


def span_names(path: Path) -> list[str]:
    return [
        span.name
        for request in read_records(path)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def segment_files(wal_dir: Path) -> list[Path]:
    return sorted(wal_dir.glob("*.seg"))


def fsyncs(metrics: IngestMetrics) -> float:
    return metrics.registry.get_sample_value("agentwatch_wal_fsyncs_total") or 0.0


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


async def within_deadline(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, DEADLINE_S)


async def opened(wal_dir: Path, config: WalConfig = NEVER) -> WriteAheadLog:
    wal = WriteAheadLog(wal_dir, config, IngestMetrics())
    await wal.open()
    return wal


async def drain_sealed(wal: WriteAheadLog) -> list[Segment]:
    """Every segment sealed so far (call after close(): nothing more is coming)."""
    segments = []
    while wal.sealed_backlog():
        segments.append(await within_deadline(wal.next_sealed()))
    return segments


def write_raw_segment(wal_dir: Path, number: int, data: bytes) -> Path:
    wal_dir.mkdir(parents=True, exist_ok=True)
    path = wal_dir / f"{number:020d}.seg"
    path.write_bytes(data)
    return path


# -- group commit ------------------------------------------------------------------------


def test_concurrent_appends_are_all_written_in_order_per_caller_and_share_fsyncs(
    tmp_path: Path,
) -> None:
    callers, per_caller = 20, 10
    metrics = IngestMetrics()

    async def caller(wal: WriteAheadLog, name: str) -> None:
        for sequence in range(per_caller):
            await wal.append(record(f"{name}/{sequence}"), 1)

    async def main() -> None:
        wal = WriteAheadLog(tmp_path, NEVER, metrics)
        await wal.open()
        await within_deadline(asyncio.gather(*(caller(wal, f"c{i}") for i in range(callers))))
        await wal.close()

    run(main)

    names = [name for path in segment_files(tmp_path) for name in span_names(path)]
    assert sorted(names) == sorted(f"c{i}/{s}" for i in range(callers) for s in range(per_caller))
    for i in range(callers):
        mine = [int(name.split("/")[1]) for name in names if name.startswith(f"c{i}/")]
        assert mine == list(range(per_caller))
    assert 0 < fsyncs(metrics) < callers * per_caller  # group commit


def test_appends_gathered_at_once_are_written_with_fewer_fsyncs_than_appends(
    tmp_path: Path,
) -> None:
    metrics = IngestMetrics()

    async def main() -> None:
        wal = WriteAheadLog(tmp_path, NEVER, metrics)
        await wal.open()
        await within_deadline(asyncio.gather(*(wal.append(record(f"s{i}"), 1) for i in range(50))))
        await wal.close()

    run(main)

    assert len(span_names(segment_files(tmp_path)[0])) == 50
    assert 0 < fsyncs(metrics) < 50


def test_an_append_whose_caller_gave_up_does_not_stall_the_others(tmp_path: Path) -> None:
    """A cancelled caller (client went away) must not break the group it was part of."""

    async def main() -> list[Segment]:
        wal = await opened(tmp_path)
        tasks = [asyncio.create_task(wal.append(record(f"s{i}"), 1)) for i in range(10)]
        await asyncio.sleep(0)  # every append is queued for the next group commit
        tasks[3].cancel()
        results = await within_deadline(asyncio.gather(*tasks, return_exceptions=True))
        assert isinstance(results.pop(3), asyncio.CancelledError)
        assert results == [None] * 9
        await within_deadline(wal.append(record("later"), 1))
        await within_deadline(wal.close())
        return await drain_sealed(wal)

    segments = run(main)

    assert len(segments) == 1
    # The cancelled caller's record was written all the same; it is simply not confirmed.
    assert span_names(segments[0].path) == [*(f"s{i}" for i in range(10)), "later"]


# -- sealing and releasing -------------------------------------------------------------


def test_a_segment_is_sealed_when_it_reaches_seal_spans(tmp_path: Path) -> None:
    config = WalConfig(seal_spans=10, seal_bytes=10**12, seal_age_s=3600.0)

    async def main() -> tuple[Segment, int]:
        wal = await opened(tmp_path, config)
        for i in range(3):  # 4 + 4 + 4 spans: the third append crosses 10
            assert wal.sealed_backlog() == 0
            await wal.append(record(*(f"r{i}s{j}" for j in range(4))), 4)
        segment = await within_deadline(wal.next_sealed())
        await wal.append(record("next"), 1)
        active = len(segment_files(tmp_path))
        await wal.close()
        return segment, active

    segment, files_while_open = run(main)

    assert segment.spans == 12
    assert segment.size == segment.path.stat().st_size
    assert len(span_names(segment.path)) == 12
    assert files_while_open == 2  # the sealed one and the new active one
    assert segment_files(tmp_path)[-1].name > segment.path.name


def test_a_segment_is_sealed_by_age_and_release_deletes_it(tmp_path: Path) -> None:
    config = WalConfig(seal_spans=10**9, seal_bytes=10**12, seal_age_s=0.05)

    async def main() -> None:
        wal = await opened(tmp_path, config)
        await wal.append(record("a", "b"), 2)
        segment = await within_deadline(wal.next_sealed())  # nothing else would seal it
        assert (segment.spans, segment.path.exists()) == (2, True)
        assert wal.disk_bytes == segment.size > 0

        wal.release(segment)

        assert not segment.path.exists()
        assert wal.disk_bytes == 0
        await wal.close()

    run(main)


def test_while_the_consumer_is_busy_the_segment_grows_and_is_sealed_when_it_asks(
    tmp_path: Path,
) -> None:
    """An insert costs ClickHouse a fixed ~0.3 s: while the store is busy with one, the
    next segment takes everything that arrives instead of being sealed every second."""
    config = WalConfig(seal_spans=10**9, seal_bytes=10**12, seal_age_s=0.05)

    async def main() -> None:
        wal = await opened(tmp_path, config)
        await wal.append(record("a", "b"), 2)
        # Ten times the seal age with no consumer waiting (proving a negative: a
        # fixed wait): the age loop ran ~40 times and sealed nothing.
        await asyncio.sleep(0.5)
        assert wal.sealed_backlog() == 0
        await wal.append(record("c"), 1)

        segment = await within_deadline(wal.next_sealed())  # old enough: sealed at once

        assert (segment.spans, span_names(segment.path)) == (3, ["a", "b", "c"])
        await wal.close()

    run(main)


def test_an_empty_active_segment_is_not_sealed(tmp_path: Path) -> None:
    async def main() -> int:
        wal = await opened(tmp_path, WalConfig(seal_age_s=0.01))
        await wal.close()
        return wal.sealed_backlog()

    assert run(main) == 0
    assert segment_files(tmp_path) == []


# -- recovery ----------------------------------------------------------------------------


def test_segments_left_on_disk_are_replayed_in_number_order_with_their_span_counts(
    tmp_path: Path,
) -> None:
    (tmp_path / "wal-id").write_text("previous-run")
    five = write_raw_segment(tmp_path, 5, record("e", "f") + record("g"))
    three = write_raw_segment(tmp_path, 3, record("a") + record("b", "c", "d"))

    async def main() -> tuple[list[Segment], int, list[Segment]]:
        wal = await opened(tmp_path)
        replayed = [await within_deadline(wal.next_sealed()) for _ in range(2)]
        disk_bytes = wal.disk_bytes
        await wal.append(record("new"), 1)
        await wal.close()
        return replayed, disk_bytes, await drain_sealed(wal)

    replayed, disk_bytes, new = run(main)

    assert [(s.path, s.number, s.spans) for s in replayed] == [(three, 3, 4), (five, 5, 3)]
    assert [s.dedup_token for s in replayed] == ["previous-run-3", "previous-run-5"]
    assert disk_bytes == three.stat().st_size + five.stat().st_size
    assert [s.number for s in new] == [6]  # above every segment of the last run
    assert new[0].dedup_token == "previous-run-6"
    assert span_names(new[0].path) == ["new"]


@pytest.mark.parametrize(
    "torn_tail",
    [
        pytest.param(lambda r: r[: len(r) // 2], id="half-a-record"),
        pytest.param(lambda r: r[:1], id="length-prefix-only"),
        pytest.param(lambda r: b"\x80", id="partial-varint"),
        pytest.param(lambda r: b"\xff\xff\x7f" + b"\x00" * 10, id="length-past-the-end"),
    ],
)
def test_a_torn_tail_is_cut_off_and_the_complete_records_before_it_survive(
    tmp_path: Path, torn_tail: Callable[[bytes], bytes]
) -> None:
    complete = record("a", "b") + record("c")
    path = write_raw_segment(tmp_path, 1, complete + torn_tail(record("torn", padding=500)))

    async def main() -> Segment:
        wal = await opened(tmp_path)
        segment = await within_deadline(wal.next_sealed())
        await wal.close()
        return segment

    segment = run(main)

    assert (segment.path, segment.spans, segment.size) == (path, 3, len(complete))
    assert path.read_bytes() == complete
    assert span_names(path) == ["a", "b", "c"]


def test_a_segment_without_a_complete_record_is_removed_and_its_number_not_reused(
    tmp_path: Path,
) -> None:
    torn = write_raw_segment(tmp_path, 7, record("torn", padding=100)[:20])

    async def main() -> list[Segment]:
        wal = await opened(tmp_path)
        assert wal.sealed_backlog() == 0
        assert wal.disk_bytes == 0
        await wal.append(record("new"), 1)
        await wal.close()
        return await drain_sealed(wal)

    segments = run(main)

    assert [s.number for s in segments] == [8]
    assert not torn.exists()


def test_the_dedup_token_of_a_segment_is_the_same_after_a_restart(tmp_path: Path) -> None:
    async def first_run() -> Segment:
        wal = await opened(tmp_path)
        await wal.append(record("a"), 1)
        await wal.close()
        (segment,) = await drain_sealed(wal)
        return segment  # never released: the store did not confirm it

    async def second_run() -> Segment:
        wal = await opened(tmp_path)
        segment = await within_deadline(wal.next_sealed())
        await wal.close()
        return segment

    sealed = run(first_run)
    wal_id = (tmp_path / "wal-id").read_text()
    replayed = run(second_run)

    assert (replayed.path, replayed.spans, replayed.size) == (sealed.path, 1, sealed.size)
    assert replayed.dedup_token == sealed.dedup_token
    assert replayed.dedup_token.startswith(wal_id)
    assert (tmp_path / "wal-id").read_text() == wal_id


def test_a_restart_after_every_segment_was_stored_never_reuses_a_dedup_token(
    tmp_path: Path,
) -> None:
    """A clean shutdown leaves no segment; new ones must not repeat an old token.

    ClickHouse drops an insert whose token it has seen, so a repeated token would
    silently lose the new segment's spans.
    """

    async def one_run(name: str) -> str:
        wal = await opened(tmp_path)
        await wal.append(record(name), 1)
        await wal.close()
        (segment,) = await drain_sealed(wal)
        wal.release(segment)  # stored: the log is empty again
        return segment.dedup_token

    tokens = [run(partial(one_run, name)) for name in ("a", "b", "c")]

    assert len(set(tokens)) == 3
    assert segment_files(tmp_path) == []


# -- backpressure and failures -----------------------------------------------------------


def test_append_refuses_a_record_that_would_overflow_the_log_and_writes_none_of_it(
    tmp_path: Path,
) -> None:
    small = record("fits")
    config = WalConfig(
        max_bytes=len(small) + 1000, seal_spans=10**9, seal_bytes=10**12, seal_age_s=3600.0
    )

    async def main() -> None:
        wal = await opened(tmp_path, config)
        await wal.append(small, 1)
        with pytest.raises(OverloadedError) as refused:
            await wal.append(record("too-big", padding=2000), 1)
        assert refused.value.retry_after_s > 0
        assert wal.disk_bytes == len(small)
        assert segment_files(tmp_path)[0].read_bytes() == small
        await wal.append(record("still-fits"), 1)  # a smaller record still has room
        await wal.close()

    run(main)

    assert span_names(segment_files(tmp_path)[0]) == ["fits", "still-fits"]


def test_append_refuses_when_the_log_is_full_of_sealed_segments_until_one_is_released(
    tmp_path: Path,
) -> None:
    one = record("x", padding=1000)
    config = WalConfig(max_bytes=3 * len(one), seal_spans=1, seal_bytes=10**12, seal_age_s=3600.0)

    async def main() -> None:
        wal = await opened(tmp_path, config)
        for _ in range(3):
            await wal.append(record("x", padding=1000), 1)
        with pytest.raises(OverloadedError) as refused:
            await wal.append(record("x", padding=1000), 1)
        assert refused.value.retry_after_s > 0
        wal.release(await within_deadline(wal.next_sealed()))
        await wal.append(record("x", padding=1000), 1)
        await wal.close()

    run(main)

    assert len(segment_files(tmp_path)) == 3


def test_a_failure_to_start_the_next_segment_does_not_fail_a_durable_append(
    tmp_path: Path,
) -> None:
    """The group was fsynced before the seal: its callers must hear OK (a retry would
    store it twice), and the log starts a segment again on the next write."""

    async def main() -> list[Segment]:
        wal = await opened(tmp_path, WalConfig(seal_spans=1, seal_age_s=3600.0))
        blocker = tmp_path / f"{2:020d}.seg"
        blocker.mkdir()  # a directory where the next segment file would go
        await within_deadline(wal.append(record("a"), 1))  # seals 1; cannot open 2
        sealed = [await within_deadline(wal.next_sealed())]
        await within_deadline(wal.append(record("b"), 1))  # opens 3, seals it
        sealed.append(await within_deadline(wal.next_sealed()))
        blocker.rmdir()
        await wal.close()
        return sealed

    sealed = run(main)

    assert [(s.number, span_names(s.path)) for s in sealed] == [(1, ["a"]), (3, ["b"])]


# -- close -------------------------------------------------------------------------------


def test_close_writes_pending_records_and_seals_the_active_segment(tmp_path: Path) -> None:
    async def main() -> list[Segment]:
        wal = await opened(tmp_path)
        first = [asyncio.create_task(wal.append(record(f"a{i}"), 1)) for i in range(5)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the first group is being written...
        second = [asyncio.create_task(wal.append(record(f"b{i}"), 1)) for i in range(5)]
        await asyncio.sleep(0)  # ...and the second is waiting for it
        await within_deadline(wal.close())
        assert all(task.done() and task.exception() is None for task in first + second)
        return await drain_sealed(wal)

    segments = run(main)

    assert len(segments) == 1
    assert segments[0].spans == 10
    assert sorted(span_names(segments[0].path)) == sorted(
        [*(f"a{i}" for i in range(5)), *(f"b{i}" for i in range(5))]
    )


def test_append_after_close_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        wal = await opened(tmp_path)
        await wal.append(record("a"), 1)
        await wal.close()
        await wal.close()  # idempotent
        with pytest.raises(OverloadedError) as refused:
            await wal.append(record("late"), 1)
        assert refused.value.retry_after_s > 0

    run(main)

    assert [span_names(path) for path in segment_files(tmp_path)] == [["a"]]

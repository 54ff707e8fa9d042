"""Store failures end to end: acknowledged spans survive them, exactly once.

agentwatch runs for real (receivers, write-ahead log, embedded chDB); only the store's
insert is wrapped, so a test can make it fail on demand.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from ingest import ClickHouseStore, PermanentStoreError, SpanStore, TransientStoreError, chdb_dsn
from tests.harness import AgentwatchThread, make_settings, wait_for
from tests.otlp import ExportResult, grpc_export, http_export, make_request, make_span
from tests.test_wal import read_records

SPANS_PER_REQUEST = 100


class FaultInjectingStore:
    """The real store behind a switch: inserts fail while `failing` is set.

    `refuse_once()` makes the next insert fail for good (a PermanentStoreError);
    `lose_reply_once()` lets the next insert happen but reports it failed (transient),
    as when the connection drops after the server committed.
    """

    def __init__(self) -> None:
        self.failing = threading.Event()
        self._refuse_next = threading.Event()
        self._lose_next_reply = threading.Event()
        self._store: SpanStore | None = None

    def wrap(self, store: ClickHouseStore) -> FaultInjectingStore:
        self._store = store
        return self

    def heal(self) -> None:
        self.failing.clear()

    def refuse_once(self) -> None:
        self._refuse_next.set()

    def lose_reply_once(self) -> None:
        self._lose_next_reply.set()

    def insert_segment(self, path: Path, dedup_token: str) -> None:
        assert self._store is not None
        if self._refuse_next.is_set():
            self._refuse_next.clear()
            raise PermanentStoreError("injected: the store refuses this segment")
        if self.failing.is_set():
            raise TransientStoreError("injected: the store is unavailable")
        self._store.insert_segment(path, dedup_token)
        if self._lose_next_reply.is_set():
            self._lose_next_reply.clear()
            raise TransientStoreError("injected: the reply to a committed insert was lost")


class Client:
    """Sends one trace per request; remembers which traces were acknowledged or refused."""

    def __init__(self, running: AgentwatchThread, padding: int = 0) -> None:
        self.running = running
        self.padding = padding
        self.acknowledged: set[str] = set()
        self.refused: set[str] = set()

    def send(self, transport: str = "grpc") -> ExportResult:
        trace_id = secrets.token_bytes(16)
        attributes: dict[str, str | int] = {"payload": "x" * self.padding} if self.padding else {}
        spans = [
            make_span(f"step-{i}", trace_id=trace_id, attributes=attributes)
            for i in range(SPANS_PER_REQUEST)
        ]
        body = make_request(spans).SerializeToString()
        endpoints = self.running.endpoints
        if transport == "grpc":
            result = grpc_export(endpoints.otlp_grpc, body)
        else:
            result = http_export(endpoints.otlp_http, body)
        refused = result.grpc_code == grpc.StatusCode.UNAVAILABLE or result.http_status == 503
        assert result.ok or refused, result
        (self.acknowledged if result.ok else self.refused).add(trace_id.hex())
        return result

    @property
    def acknowledged_spans(self) -> int:
        return len(self.acknowledged) * SPANS_PER_REQUEST


@pytest.fixture
def faults() -> FaultInjectingStore:
    return FaultInjectingStore()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@contextlib.contextmanager
def start(
    data_dir: Path, faults: FaultInjectingStore, **settings: Any
) -> Iterator[AgentwatchThread]:
    """agentwatch with `faults` around its store; healed before it stops, even when a test
    fails (the drain at shutdown would otherwise retry a failing store for ever)."""
    with AgentwatchThread(make_settings(data_dir, **settings), wrap_store=faults.wrap) as running:
        try:
            yield running
        finally:
            faults.heal()


def metric(running: AgentwatchThread, name: str, labels: str = "") -> float:
    text = running.api("/metrics").text
    selector = re.escape(f"{name}{{{labels}}}" if labels else name)
    match = re.search(rf"^{selector} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def stored_span_count(running: AgentwatchThread, trace_id: str) -> int:
    response = running.api(f"/api/v1/traces/{trace_id}")
    return len(response.json()["spans"]) if response.status_code == 200 else 0


def ready_status(running: AgentwatchThread) -> int:
    return running.api("/readyz").status_code


def wait_until_everything_is_stored(running: AgentwatchThread, spans: int) -> None:
    """Until the store confirmed `spans` spans and the log holds nothing unstored."""
    wait_for(
        lambda: (
            metric(running, "agentwatch_spans_stored_total") >= spans
            and metric(running, "agentwatch_wal_bytes") == 0
        )
    )


def stored(data_dir: Path) -> tuple[int, int, set[str]]:
    """(rows, distinct (TraceId, SpanId), trace ids), read after agentwatch has stopped."""
    store = ClickHouseStore(chdb_dsn(data_dir))
    try:
        table = store.table("otel_traces")
        (totals,) = store.query(
            f"SELECT count() AS rows, uniqExact(TraceId, SpanId) AS spans FROM {table}"
        )
        traces = {row["TraceId"] for row in store.query(f"SELECT DISTINCT TraceId FROM {table}")}
    finally:
        store.close()
    return totals["rows"], totals["spans"], traces


def test_spans_acknowledged_while_the_store_fails_are_stored_exactly_once_after_it_heals(
    data_dir: Path, faults: FaultInjectingStore
) -> None:
    faults.failing.set()
    with start(data_dir, faults) as running:
        client = Client(running)
        assert all(client.send().ok for _ in range(5))  # the log has room: clients see OK

        wait_for(lambda: ready_status(running) == 503)
        assert metric(running, "agentwatch_store_write_failures_total", 'kind="transient"') > 0
        assert all(client.send().ok for _ in range(5))  # still OK while inserts fail
        assert metric(running, "agentwatch_spans_stored_total") == 0

        faults.heal()
        wait_until_everything_is_stored(running, client.acknowledged_spans)
        wait_for(lambda: ready_status(running) == 200)

    rows, distinct, traces = stored(data_dir)
    assert client.acknowledged_spans == 10 * SPANS_PER_REQUEST
    assert (rows, distinct) == (client.acknowledged_spans, client.acknowledged_spans)
    assert traces == client.acknowledged


def test_a_segment_stored_but_reported_failed_is_not_stored_twice_when_retried(
    data_dir: Path, faults: FaultInjectingStore
) -> None:
    faults.lose_reply_once()
    with start(data_dir, faults) as running:
        client = Client(running)
        assert all(client.send().ok for _ in range(3))
        wait_until_everything_is_stored(running, client.acknowledged_spans)
        assert metric(running, "agentwatch_store_write_failures_total", 'kind="transient"') == 1

    rows, distinct, traces = stored(data_dir)
    assert (rows, distinct) == (client.acknowledged_spans, client.acknowledged_spans)
    assert traces == client.acknowledged


def test_a_full_log_refuses_exports_with_a_retry_delay_and_accepts_again_once_the_store_heals(
    data_dir: Path, faults: FaultInjectingStore
) -> None:
    faults.failing.set()
    with start(data_dir, faults, wal_max_bytes=1024 * 1024) as running:
        client = Client(running, padding=1000)  # ~100 KB a request: ~10 fill the log

        def refused_over_grpc() -> ExportResult | None:
            result = client.send("grpc")
            return None if result.ok else result

        refused_grpc = wait_for(refused_over_grpc)
        assert refused_grpc.grpc_code == grpc.StatusCode.UNAVAILABLE
        assert refused_grpc.retry_delay_s is not None
        assert refused_grpc.retry_delay_s > 0
        refused_http = client.send("http")
        assert refused_http.http_status == 503
        assert refused_http.retry_delay_s is not None
        assert refused_http.retry_delay_s > 0
        assert client.acknowledged
        assert len(client.refused) == 2

        faults.heal()
        wait_for(lambda: client.send("grpc").ok, interval_s=0.1)
        assert client.send("http").ok
        wait_until_everything_is_stored(running, client.acknowledged_spans)

    rows, distinct, traces = stored(data_dir)
    assert (rows, distinct) == (client.acknowledged_spans, client.acknowledged_spans)
    assert traces == client.acknowledged  # every acknowledged trace, no refused one
    assert not traces & client.refused


def test_a_segment_the_store_refuses_for_good_is_dead_lettered_and_later_spans_are_stored(
    data_dir: Path, faults: FaultInjectingStore
) -> None:
    faults.refuse_once()
    with start(data_dir, faults) as running:
        client = Client(running)
        assert client.send().ok
        (refused_trace,) = client.acknowledged
        wait_for(lambda: metric(running, "agentwatch_dead_lettered_batches_total") == 1)
        assert metric(running, "agentwatch_store_write_failures_total", 'kind="permanent"') == 1

        assert client.send().ok
        (later_trace,) = client.acknowledged - {refused_trace}
        wait_for(lambda: stored_span_count(running, later_trace) == SPANS_PER_REQUEST)
        assert stored_span_count(running, refused_trace) == 0
        assert metric(running, "agentwatch_dead_lettered_batches_total") == 1

    (dead_letter,) = (data_dir / "deadletter").iterdir()
    (request,) = read_records(dead_letter)
    assert {
        span.trace_id.hex()
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    } == {refused_trace}
    rows, _, traces = stored(data_dir)
    assert (rows, traces) == (SPANS_PER_REQUEST, {later_trace})


def test_spans_sent_after_a_clean_restart_are_stored(
    data_dir: Path, faults: FaultInjectingStore
) -> None:
    """The log is empty after a clean shutdown; its next segments must still be stored
    (not dropped by ClickHouse as repeats of the last run's dedup tokens)."""
    client_traces: list[str] = []
    for _ in range(2):
        with start(data_dir, faults) as running:
            client = Client(running)
            assert client.send().ok
            (trace,) = client.acknowledged
            client_traces.append(trace)
            wait_until_everything_is_stored(running, SPANS_PER_REQUEST)
        assert not list((data_dir / "wal").glob("*.seg"))

    rows, distinct, traces = stored(data_dir)
    assert (rows, distinct) == (2 * SPANS_PER_REQUEST, 2 * SPANS_PER_REQUEST)
    assert traces == set(client_traces)


def test_shutdown_with_the_store_down_leaves_the_log_for_the_next_start(
    data_dir: Path, faults: FaultInjectingStore
) -> None:
    faults.failing.set()
    running = AgentwatchThread(
        make_settings(data_dir, drain_timeout_s=0.5), wrap_store=faults.wrap
    ).__enter__()
    client = Client(running)
    assert all(client.send().ok for _ in range(3))
    running.stop()  # returns: the drain gives up on the failing store after its timeout

    assert list((data_dir / "wal").glob("*.seg"))  # the acknowledged spans wait on disk
    with start(data_dir, FaultInjectingStore()) as restarted:
        wait_until_everything_is_stored(restarted, client.acknowledged_spans)

    rows, distinct, traces = stored(data_dir)
    assert (rows, distinct) == (client.acknowledged_spans, client.acknowledged_spans)
    assert traces == client.acknowledged

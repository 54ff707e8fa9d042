"""kill -9 in the middle of a load: every acknowledged span is stored exactly once."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

from ingest import ClickHouseStore, chdb_dsn
from tests.harness import AgentwatchProcess, http, wait_for
from tests.otlp import grpc_export, make_request, make_span


class CountingClient:
    """Sends requests until stopped; remembers the span ids of every acknowledged one."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.acknowledged: set[str] = set()
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            spans = [make_span(f"step-{i}") for i in range(50)]
            result = grpc_export(self.target, make_request(spans).SerializeToString())
            if result.ok:
                self.acknowledged.update(span.span_id.hex() for span in spans)
            else:
                self.failures += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _metric(api: str, name: str) -> float:
    text = http().get(f"{api}/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _stored(data_dir: Path) -> tuple[int, set[str]]:
    store = ClickHouseStore(chdb_dsn(data_dir))
    try:
        rows = store.query(f"SELECT SpanId FROM {store.table('otel_traces')}")
    finally:
        store.close()
    span_ids = [row["SpanId"] for row in rows]
    return len(span_ids), set(span_ids)


def test_sigkill_mid_load_loses_no_acknowledged_span_and_duplicates_none(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    # Small segments, so that some are stored, some sealed and some still open at the kill.
    env = {"AGENTWATCH_BATCH_MAX_SPANS": "500", "AGENTWATCH_FLUSH_INTERVAL_S": "0.3"}
    server = AgentwatchProcess(data_dir, env=env).start()
    client = CountingClient(server.endpoints["otlp_grpc"])
    client.start()
    try:
        wait_for(lambda: len(client.acknowledged) >= 5_000, timeout_s=60)
        api = server.endpoints["api"]

        def some_stored_and_some_not() -> bool:
            stored = _metric(api, "agentwatch_spans_stored_total")
            return stored > 0 and _metric(api, "agentwatch_wal_bytes") > 0

        wait_for(some_stored_and_some_not)
        server.signal(signal.SIGKILL)
        server.wait()
    finally:
        client.stop()
        server.kill()
    acknowledged = set(client.acknowledged)

    restarted = AgentwatchProcess(data_dir).start()
    try:
        api = restarted.endpoints["api"]
        wait_for(lambda: _metric(api, "agentwatch_wal_bytes") == 0, timeout_s=60)
        replayed = _metric(api, "agentwatch_spans_stored_total")
    finally:
        code, _, err = restarted.stop()
    assert code == 0, err

    assert replayed > 0  # the kill left acknowledged spans that only the log had
    rows, stored_ids = _stored(data_dir)
    assert acknowledged - stored_ids == set()  # nothing acknowledged is lost
    assert rows == len(stored_ids)  # nothing is stored twice

"""CPU per span of each stage of the ingest path, measured alone, in one process.

`bench.ingest` runs the whole stack and reports CPU per span by process; this splits
it by stage, on the same agent-shaped traffic (`shared/tools/otlp_load.py`), so a
change to one stage can be measured without the noise of the others:

- receive: protobuf parse + id check + the context pass that builds the log record
  (what the event loop does per export request);
- detector read: a log segment back to `AgentSpan`s (what the detector process does
  before the detectors see a span), then each detector's `consume` on those spans;
- flat rows: the segment turned into one RowBinary row per span (`ingest/_flat_rows.py`);
- insert: the store inserting the segment (flat rows, then ClickHouse — embedded chDB,
  a fresh temp dir — all its threads); and a one-span segment (the fixed cost per
  insert);
- with `--insert-breakdown`, the insert query's parts on their own, over the flat
  rows: reading them, the whole SELECT (its output thrown away), and the INSERT
  (which adds writing the parts and the trace-id view);
- with `--group-insert K`, the traffic as K segments' rows, inserted one INSERT each
  and then all in one INSERT (a file glob): what grouping sealed segments would save;
- with `--columnar-floor`, the same spans as ready columns (translated by the Python
  reference, untimed) inserted from Arrow: the least ClickHouse itself needs to store
  them, whatever produced the columns.

Figures are CPU time (`time.process_time`: every thread of this process), in µs per
span, the least of `--repeat` runs: a neighbour on the host only ever adds to it
(cache misses, preemption), so the least is the steadiest figure on a shared machine.

    .venv/bin/python -m bench.hotpaths
    .venv/bin/python -m bench.hotpaths --requests 100 --spans-per-request 512 --repeat 5
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from bench.ingest import DEFAULT_LOAD_TOOL
from detectors._config import DetectorConfig
from detectors._engine import DetectorEngine
from ingest import AgentSpan, read_agent_spans
from ingest._batch import COLUMN_NAMES, SpanBatch
from ingest._enclosing import EnclosingResolver
from ingest._flat_rows import flat_rows
from ingest._insert_sql import file_source, insert_query, insert_settings
from ingest._resolve import build_record
from ingest._store import ClickHouseStore, chdb_dsn
from ingest._translate import drop_invalid_spans, translate


def load_tool(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("otlp_load", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["otlp_load"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def cpu_us(action: Callable[[], object], spans: int) -> float:
    """CPU µs per span of one call of `action`, with the cycle collector off (as in
    the detector process, which collects between requests)."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time()
        action()
        return (time.process_time() - start) / spans * 1e6
    finally:
        gc.enable()


def receive(bodies: list[bytes]) -> list[bytes]:
    resolver = EnclosingResolver()
    records = []
    for body in bodies:
        request = ExportTraceServiceRequest.FromString(body)
        rejected, _ = drop_invalid_spans(request)
        records.append(build_record("", request, resolver, None if rejected else body))
    return records


class RawQueries:
    """The store's insert query run by hand, without a dedup token (every run writes)."""

    def __init__(self, store: ClickHouseStore) -> None:
        self._store = store
        self._client = store._client()  # a bench reaching inside: queries the store never runs
        self._settings = insert_settings("")
        del self._settings["insert_deduplication_token"]

    def insert(self, pattern: str) -> str:
        """The INSERT … SELECT over the flat-rows file(s) `pattern` names (globs allowed)."""
        return insert_query(self._store.database, file_source(pattern), self._store.prices)

    def select(self, pattern: str) -> str:
        """Its SELECT alone, the rows thrown away."""
        query = self.insert(pattern)
        return query[query.index("SELECT") :] + " FORMAT Null"

    def run(self, sql: str) -> None:
        self._client.command(sql, settings=self._settings)

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        """A read query's rows (`{name:Type}` placeholders bound from `parameters`)."""
        return list(self._client.query(sql, parameters=parameters).result_rows)


def one_run(
    run: int,
    bodies: list[bytes],
    segment: Path,
    one_span: Path,
    spans: int,
    store: ClickHouseStore | None,
    figures: dict[str, list[float]],
) -> None:
    def measure(stage: str, action: Callable[[], object], count: int = spans) -> None:
        figures.setdefault(stage, []).append(cpu_us(action, count))

    measure("receive", lambda: receive(bodies))
    engine = DetectorEngine(DetectorConfig.from_dict(None))
    keys = engine.extra_keys()
    read: list[AgentSpan] = []
    measure("detector_read", lambda: read.extend(read_agent_spans(segment, keys)))
    measure("flat_rows", partial(flat_rows, segment.read_bytes()))
    for detector in engine.detectors:
        measure(f"detector_{detector.kind}", partial(detector.consume, read))
    if store is not None:
        measure("insert", partial(store.insert_segment, segment, f"bench-{run}"))
        # per 1000 "spans", so the figure reads as ms per insert
        measure("insert_fixed_ms", partial(store.insert_segment, one_span, f"one-{run}"), 1000)


def insert_breakdown(
    raw: RawQueries,
    rows: Path,
    one_span: Path,
    spans: int,
    figures: dict[str, list[float]],
) -> None:
    """The insert query's stages over a segment's flat `rows`, each run on its own.

    Each includes the query's analysis; `select_fixed_ms` is that on a one-span segment.
    """
    read = (
        "SELECT length(SpanAttributes), length(EventsName), length(ResourceAttributes) "
        f"FROM {file_source(str(rows))} FORMAT Null"
    )
    stages = {
        "read_rows": read,
        "select": raw.select(str(rows)),
        "insert": raw.insert(str(rows)),
    }
    for stage, sql in stages.items():
        figures.setdefault(f"breakdown_{stage}", []).append(cpu_us(partial(raw.run, sql), spans))
    figures.setdefault("breakdown_select_fixed_ms", []).append(
        cpu_us(partial(raw.run, raw.select(str(one_span.with_suffix(".rows")))), 1000)
    )


def group_insert(
    raw: RawQueries,
    records: list[bytes],
    spans: int,
    directory: Path,
    groups: int,
    figures: dict[str, list[float]],
) -> None:
    """The same spans as `groups` segments: one INSERT per segment, then one for all."""
    size = -(-len(records) // groups)
    paths = []
    for index in range(groups):
        path = directory / f"group-{index}.rows"
        path.write_bytes(flat_rows(b"".join(records[index * size : (index + 1) * size])))
        paths.append(path)

    def one_each() -> None:
        for path in paths:
            raw.run(raw.insert(str(path)))

    everything = str(directory / f"group-{{{','.join(str(i) for i in range(groups))}}}.rows")
    figures.setdefault("group_insert_one_each", []).append(cpu_us(one_each, spans))
    figures.setdefault("group_insert_all_in_one", []).append(
        cpu_us(partial(raw.run, raw.insert(everything)), spans)
    )


def arrow_table(batch: SpanBatch) -> pa.Table:
    """`batch` as Arrow columns `otel_traces` takes (maps as key/value pairs)."""

    def pairs(maps: list[dict[str, str]]) -> list[list[tuple[str, str]]]:
        return [list(attributes.items()) for attributes in maps]

    text_map = pa.map_(pa.string(), pa.string())
    arrays = []
    for name, column in zip(COLUMN_NAMES, batch.columns(), strict=True):
        if name == "Timestamp":
            arrays.append(pa.array(column, type=pa.timestamp("ns")))
        elif name == "Events.Timestamp":
            arrays.append(pa.array(column, type=pa.list_(pa.timestamp("ns"))))
        elif name in ("ResourceAttributes", "SpanAttributes"):
            arrays.append(pa.array(pairs(column), type=text_map))
        elif name in ("Events.Attributes", "Links.Attributes"):
            arrays.append(pa.array([pairs(maps) for maps in column], type=pa.list_(text_map)))
        else:
            arrays.append(pa.array(column))
    return pa.Table.from_arrays(arrays, names=list(COLUMN_NAMES))


def columnar_floor(
    store: ClickHouseStore, bodies: list[bytes], figures: dict[str, list[float]]
) -> None:
    resolver = EnclosingResolver()
    batch = SpanBatch()
    for body in bodies:
        batch.extend(translate(ExportTraceServiceRequest.FromString(body), "", resolver))
    table = arrow_table(batch)
    insert = partial(
        store._client().insert_arrow,
        store.table("otel_traces"),
        table,
        settings={"max_partitions_per_insert_block": 0},
    )
    figures.setdefault("columnar_floor_arrow_insert", []).append(cpu_us(insert, len(batch)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-insert", action="store_true", help="skip the ClickHouse stage")
    parser.add_argument(
        "--insert-breakdown", action="store_true", help="also time the insert query's parts"
    )
    parser.add_argument(
        "--group-insert",
        type=int,
        default=0,
        metavar="K",
        help="also time K segments inserted one by one against all in one INSERT",
    )
    parser.add_argument(
        "--columnar-floor", action="store_true", help="also time ready columns from Arrow"
    )
    parser.add_argument("--load-tool", type=Path, default=DEFAULT_LOAD_TOOL)
    args = parser.parse_args()

    tool = load_tool(args.load_tool)
    bodies = tool.make_requests(args.requests, args.spans_per_request)
    spans = args.requests * args.spans_per_request  # all valid: none is dropped
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="agentwatch-hotpaths-") as tmp:
        segment = Path(tmp) / "segment.wal"
        records = receive(bodies)
        segment.write_bytes(b"".join(records))
        one_span = Path(tmp) / "one.wal"
        one_span.write_bytes(receive(tool.make_requests(1, 1))[0])
        # The flat rows the breakdowns run the insert query over.
        segment.with_suffix(".rows").write_bytes(flat_rows(segment.read_bytes()))
        one_span.with_suffix(".rows").write_bytes(flat_rows(one_span.read_bytes()))
        store = None
        if not args.no_insert:
            store = ClickHouseStore(chdb_dsn(Path(tmp)))
            store.open()
        raw = RawQueries(store) if store is not None else None
        for run in range(args.repeat):
            one_run(run, bodies, segment, one_span, spans, store, figures)
            if raw is not None and args.insert_breakdown:
                insert_breakdown(raw, segment.with_suffix(".rows"), one_span, spans, figures)
            if raw is not None and args.group_insert > 1:
                group_insert(raw, records, spans, Path(tmp), args.group_insert, figures)
            if store is not None and args.columnar_floor:
                columnar_floor(store, bodies, figures)
        if store is not None:
            store.close()

    least = {stage: round(min(values), 2) for stage, values in figures.items()}
    engine_total = sum(
        value
        for stage, value in least.items()
        if stage.startswith("detector_") and stage != "detector_read"
    )
    report = {
        "spans": spans,
        "cpu_us_per_span": least,
        "detectors_total": round(engine_total, 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

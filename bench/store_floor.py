"""What ClickHouse alone costs per span, inserts and merges, and the ceiling it sets.

`bench.hotpaths` times one insert; a MergeTree table then keeps rewriting what was
inserted, merging small parts into bigger ones in background threads. This inserts
`--segments` distinct segments' flat rows (made beforehand, untimed) into a fresh
embedded store one after another, as ingest does, waits until no merge is running,
and reports the CPU of the whole process (ClickHouse's threads included) per span:

- `insert_us_per_span`: while the inserts ran (merges started meanwhile count too);
- `store_us_per_span`: until the merges settled: the store's whole cost;
- `rows_merged_per_row`: rows rewritten by merges per inserted row (ClickHouse's
  `MergedRows` / `InsertedRows` events), which grows with the log of a day
  partition's size;
- `ceiling_spans_per_s_two_cores`: 2 cores / `store_us_per_span`: the most this
  store could take on two cores if nothing else ran (no receiving, no write-ahead
  log, no detectors).

    .venv/bin/python -m bench.store_floor
    .venv/bin/python -m bench.store_floor --segments 40
    .venv/bin/python -m bench.store_floor --segments 40 --table-setting merge_selector_base=10
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from bench.hotpaths import RawQueries, load_tool, receive
from bench.ingest import DEFAULT_LOAD_TOOL
from ingest._flat_rows import flat_rows
from ingest._store import ClickHouseStore, chdb_dsn

_COUNTERS = ("InsertedRows", "MergedRows")
_SETTING = re.compile(r"^([a-z_]+)=([0-9]+)$")


def table_setting(text: str) -> tuple[str, int]:
    """`name=integer`, a MergeTree setting to try on the span table."""
    match = _SETTING.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected name=integer, got {text!r}")
    return match.group(1), int(match.group(2))


def counters(raw: RawQueries) -> dict[str, int]:
    rows = raw.query(
        "SELECT event, value FROM system.events WHERE event IN {names:Array(String)}",
        {"names": list(_COUNTERS)},
    )
    found = {str(event): int(value) for event, value in rows}
    return {name: found.get(name, 0) for name in _COUNTERS}


def wait_for_merges(raw: RawQueries, deadline_s: float = 900.0) -> None:
    """Until no merge has been running for a few polls in a row (the merge scheduler
    picks the next merge shortly after one ends)."""
    quiet = 0
    deadline = time.monotonic() + deadline_s
    while quiet < 6:
        if time.monotonic() > deadline:
            raise SystemExit(f"merges still running after {deadline_s:.0f} s")
        running = raw.query("SELECT count() FROM system.merges")[0][0]
        quiet = quiet + 1 if running == 0 else 0
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--requests", type=int, default=60, help="requests per segment")
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument(
        "--table-setting",
        type=table_setting,
        action="append",
        default=[],
        metavar="NAME=N",
        help="a MergeTree setting for the span table (repeatable)",
    )
    parser.add_argument("--load-tool", type=Path, default=DEFAULT_LOAD_TOOL)
    args = parser.parse_args()

    tool = load_tool(args.load_tool)
    bodies = tool.make_requests(args.segments * args.requests, args.spans_per_request)
    spans = len(bodies) * args.spans_per_request
    with tempfile.TemporaryDirectory(prefix="agentwatch-store-floor-") as tmp:
        paths = []
        for index in range(args.segments):
            records = receive(bodies[index * args.requests : (index + 1) * args.requests])
            path = Path(tmp) / f"segment-{index}.rows"
            path.write_bytes(flat_rows(b"".join(records)))
            paths.append(path)
        store = ClickHouseStore(chdb_dsn(Path(tmp) / "store"))
        store.open()
        raw = RawQueries(store)
        for name, value in args.table_setting:  # name matched [a-z_]+, value an integer
            raw.run(f"ALTER TABLE {store.table('otel_traces')} MODIFY SETTING {name} = {value}")
        before = counters(raw)
        started = time.process_time()
        for path in paths:
            raw.run(raw.insert(str(path)))
        inserted = time.process_time()
        wait_for_merges(raw)
        settled = time.process_time()
        after = counters(raw)
        parts = raw.query(
            "SELECT count() FROM system.parts WHERE active AND database = {database:String} "
            "AND table = 'otel_traces'",
            {"database": store.database},
        )[0][0]
        store.close()

    inserted_rows = after["InsertedRows"] - before["InsertedRows"]
    store_us = (settled - started) / spans * 1e6
    report = {
        "spans": spans,
        "segments": args.segments,
        "table_settings": dict(args.table_setting),
        "insert_us_per_span": round((inserted - started) / spans * 1e6, 2),
        "store_us_per_span": round(store_us, 2),
        "rows_merged_per_row": round(
            (after["MergedRows"] - before["MergedRows"]) / max(inserted_rows, 1), 2
        ),
        "active_parts": parts,
        "ceiling_spans_per_s_two_cores": round(2e6 / store_us),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

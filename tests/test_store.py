"""The ClickHouse store on real engines: embedded chDB always, a server when one is given.

Set AGENTWATCH_TEST_CLICKHOUSE_URL (e.g. http://default:@127.0.0.1:8123) to run every
test here against a ClickHouse server too.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import COLUMN_NAMES, ClickHouseStore, PermanentStoreError, chdb_dsn
from ingest._migrations import migration_files
from ingest._wal_record import frame
from tests.otlp import make_request, make_span
from tests.segments import write_segment

SERVER_URL_VARIABLE = "AGENTWATCH_TEST_CLICKHOUSE_URL"
# Read at import time, before the autouse fixture clears AGENTWATCH_* for each test.
SERVER_URL = os.environ.get(SERVER_URL_VARIABLE, "")


@pytest.fixture(params=["chdb", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ClickHouseStore]:
    database = f"agentwatch_test_{secrets.token_hex(4)}"
    if request.param == "chdb":
        dsn = chdb_dsn(tmp_path)
    else:
        if not SERVER_URL:
            pytest.skip(f"no ClickHouse server: set {SERVER_URL_VARIABLE} to run this variant")
        dsn = SERVER_URL
    opened = ClickHouseStore(dsn, database=database, retention_days=30)
    opened.open()
    yield opened
    if request.param == "server":
        opened.query(f"DROP DATABASE IF EXISTS {database}")
    opened.close()


def _ddl_columns() -> list[str]:
    """The span table's columns: its CREATE TABLE (Nested expanded), then added ones."""
    template = next(sql for _, name, sql in migration_files() if "otel_traces.sql" in name)
    sql = "\n".join(line for line in template.splitlines() if not line.startswith("--"))
    body = sql.split("(", 1)[1].split(") ENGINE", 1)[0]
    columns: list[str] = []
    nested: str | None = None
    for raw_line in body.splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("--", "INDEX", ")")):
            if line.startswith(")") and nested:
                nested = None
            continue
        name = re.match(r"^(\w+)", line)
        if not name:
            continue
        if line.split()[1:2] == ["Nested"]:
            nested = name.group(1)
            continue
        columns.append(f"{nested}.{name.group(1)}" if nested else name.group(1))
    for _, _, later in migration_files():  # columns added by later migrations, in order
        if re.search(r"ALTER TABLE \{database\}\.otel_traces ", later):
            columns += re.findall(r"ADD COLUMN IF NOT EXISTS (\w+)", later)
    return columns


def test_insert_column_list_matches_the_ddl_file() -> None:
    assert list(COLUMN_NAMES) == _ddl_columns()


def test_insert_column_list_matches_the_created_table(store: ClickHouseStore) -> None:
    rows = store.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = 'otel_traces' "
        "ORDER BY position",
        {"db": store.database},
    )
    assert [row["name"] for row in rows] == list(COLUMN_NAMES)


def test_migrations_are_recorded_and_idempotent(store: ClickHouseStore) -> None:
    store.open()  # second run: nothing to apply, nothing fails

    applied = store.query(
        f"SELECT version FROM {store.table('schema_migrations')} ORDER BY version"
    )
    assert [row["version"] for row in applied] == [v for v, _, _ in migration_files()]


def _count(store: ClickHouseStore) -> dict[str, int]:
    rows = store.query(
        f"SELECT count() AS n, uniqExact(TraceId, SpanId) AS unique_spans "
        f"FROM {store.table('otel_traces')}"
    )
    return {k: int(v) for k, v in rows[0].items()}


def test_inserted_segment_is_queryable_with_lookup_rows(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    spans = [make_span(attributes={"gen_ai.agent.name": "a"}) for _ in range(5)]
    segment = write_segment(tmp_path / "1.seg", [make_request(spans)], tenant="tenant-1")

    store.insert_segment(segment, "wal-test-1")

    rows = store.query(
        f"SELECT count() AS n, any(AgentName) AS agent, any(TenantId) AS tenant "
        f"FROM {store.table('otel_traces')}"
    )
    assert rows == [{"n": 5, "agent": "a", "tenant": "tenant-1"}]
    lookup = store.query(
        f"SELECT count() AS n FROM {store.table('otel_traces_trace_id_ts')} "
        "WHERE TraceId = {t:String}",
        {"t": spans[0].trace_id.hex()},
    )
    assert lookup[0]["n"] >= 1


def test_replaying_a_segment_with_its_token_inserts_nothing_twice(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    requests = [make_request([make_span() for _ in range(4)]) for _ in range(3)]
    segment = write_segment(tmp_path / "7.seg", requests)

    store.insert_segment(segment, "wal-abc-7")
    store.insert_segment(segment, "wal-abc-7")  # a replay after a crash

    assert _count(store) == {"n": 12, "unique_spans": 12}
    store.insert_segment(segment, "wal-abc-8")  # another token is another batch
    assert _count(store) == {"n": 24, "unique_spans": 12}


def test_bound_parameters_keep_hostile_values_inert(store: ClickHouseStore, tmp_path: Path) -> None:
    store.insert_segment(write_segment(tmp_path / "1.seg", [make_request([make_span()])]), "t")

    hostile = "x' OR 1=1 --"
    rows = store.query(
        f"SELECT count() AS n FROM {store.table('otel_traces')} WHERE ServiceName = {{s:String}}",
        {"s": hostile},
    )
    assert rows == [{"n": 0}]


def test_a_segment_the_store_cannot_parse_is_a_permanent_error(
    store: ClickHouseStore, tmp_path: Path
) -> None:
    segment = tmp_path / "bad.seg"
    segment.write_bytes(frame(b"\x0a\xff\xff\xff\xff\x0f garbage that is not protobuf"))

    with pytest.raises(PermanentStoreError):
        store.insert_segment(segment, "t-bad")

    assert _count(store)["n"] == 0


def test_retention_setting_is_the_table_ttl_and_follows_changes(
    store: ClickHouseStore,
) -> None:
    def ttl() -> str:
        rows = store.query(
            "SELECT create_table_query AS q FROM system.tables "
            "WHERE database = {db:String} AND name = 'otel_traces'",
            {"db": store.database},
        )
        return str(rows[0]["q"])

    assert "toIntervalDay(30)" in ttl()
    assert "ttl_only_drop_parts = 1" in ttl()

    changed = ClickHouseStore(store.dsn, database=store.database, retention_days=7)
    changed.open()

    assert "toIntervalDay(7)" in ttl()

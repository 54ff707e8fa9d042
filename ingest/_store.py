"""ClickHouse storage through clickhouse-connect: embedded chDB or a ClickHouse server.

One SQL dialect and one code path; only the DSN differs (`chdb:///<dir>/db` or
`http(s)://…`). Clients are never shared between threads: each thread that touches
the store gets its own (chDB shares one engine per process underneath).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError
from google.protobuf.message import DecodeError

from ingest._enclosing import Correction
from ingest._errors import PermanentStoreError, StoreInUseError, TransientStoreError
from ingest._flat_rows import flat_rows
from ingest._insert_sql import (
    corrections_query,
    file_source,
    input_source,
    insert_query,
    insert_settings,
)
from ingest._logs import LOG_COLUMNS, log_rows
from ingest._migrations import apply_migrations
from ingest._prices import PriceTable
from ingest._wal_record import iter_records, read_corrections, read_logs_payload

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# ClickHouse errors (by the name at the end of the message) that mean "this data can
# never be inserted": it does not parse or does not fit. Anything else — network,
# timeouts, too many parts, and also a bug in agentwatch's own query — is retried:
# a query bug must stall ingest loudly (metrics, /readyz), not dead-letter every batch.
_PERMANENT_ERROR = re.compile(
    r"\((CANNOT_PARSE_\w+|ATTEMPT_TO_READ_AFTER_EOF|CANNOT_READ_ALL_DATA|INCORRECT_DATA"
    r"|\w*PROTOBUF\w*|TOO_LARGE_STRING_SIZE|TOO_LARGE_ARRAY_SIZE|VALUE_IS_OUT_OF_RANGE\w*"
    r"|CANNOT_CONVERT_TYPE|TYPE_MISMATCH|UNEXPECTED_END_OF_FILE)\)"
)


def chdb_dsn(data_dir: Path) -> str:
    return f"chdb://{(data_dir / 'db').resolve()}"


class ClickHouseStore:
    """Schema management, span inserts and read queries against one database."""

    def __init__(
        self,
        dsn: str,
        database: str = "agentwatch",
        retention_days: int = 30,
        prices: PriceTable | None = None,
    ) -> None:
        """`prices` prices LLM spans as they are stored (default: the shipped table)."""
        if not _IDENTIFIER.match(database):
            raise ValueError(f"invalid database name {database!r}")
        self.dsn = dsn
        self.prices = prices if prices is not None else PriceTable.load()
        self.database = database
        self.retention_days = retention_days
        self.is_embedded = dsn.startswith("chdb:")
        self._local = threading.local()
        self._clients: list[Any] = []
        self._clients_lock = threading.Lock()
        self._closed = False
        self._schema_ready = False

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> None:
        """Connect, create the database and apply pending migrations."""
        try:
            client = self._client()
            # self.database matched _IDENTIFIER in __init__; identifiers cannot be bound.
            client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            apply_migrations(client, self.database, self.retention_days)
        except Exception as exc:
            self._drop_thread_client()
            raise classify_store_error(exc) from exc
        self._schema_ready = True

    def _ensure_schema(self) -> None:
        """Run `open()` first if start-up could not (a server that was still down)."""
        if not self._schema_ready:
            self.open()

    def close(self) -> None:
        self._closed = True
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(Exception):  # closing is best effort at shutdown
                client.close()
        self._local = threading.local()

    def table(self, name: str) -> str:
        """A table's qualified name (the database name was validated as an identifier)."""
        return f"{self.database}.{name}"

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is not None:
            return client
        if self._closed:
            raise TransientStoreError("store is closed")
        try:
            client = clickhouse_connect.get_client(
                dsn=self.dsn,
                settings={"async_insert": 0},
            )
        except Exception as exc:
            raise _classify_open_error(exc, self.dsn) from exc
        self._local.client = client
        with self._clients_lock:
            self._clients.append(client)
        return client

    # -- writes ----------------------------------------------------------------------

    def insert_segment(self, path: Path, dedup_token: str) -> None:
        """Insert a write-ahead-log segment: its spans as flat rows (`flat_rows`), from
        which ClickHouse derives the agent columns; then its logs and corrections.

        chDB reads the rows from a scratch file beside the segment; a server gets them
        in the request body. The same `dedup_token` makes a replayed segment a no-op.
        """
        self._ensure_schema()
        segment = path.read_bytes()
        scratch = path.with_name(path.name + ".rows")
        try:
            rows = flat_rows(segment)
            client = self._client()
            if rows:
                settings = insert_settings(dedup_token)
                if self.is_embedded:
                    # Derived data: the segment stays the durable copy, so no fsync.
                    scratch.write_bytes(rows)
                    sql = insert_query(self.database, file_source(str(scratch)), self.prices)
                    client.command(sql, settings=settings)
                else:
                    sql = insert_query(self.database, input_source(), self.prices)
                    client.command(sql, data=rows, settings=settings)
            corrections, log_rows = _corrections_and_log_rows(segment)
            if log_rows:
                # Its own dedup window (per table), so the same token is safe here.
                client.insert(
                    self.table("otel_logs"),
                    log_rows,
                    column_names=list(LOG_COLUMNS),
                    settings={
                        "insert_deduplication_token": dedup_token,
                        "max_partitions_per_insert_block": 0,
                    },
                )
            self._apply_corrections(client, corrections)
        except Exception as exc:
            self._drop_thread_client()
            raise classify_store_error(exc) from exc
        finally:
            scratch.unlink(missing_ok=True)

    def _apply_corrections(self, client: Any, corrections: dict[tuple[str, str], Any]) -> None:
        """Fix spans stored before their enclosing span arrived (see _enclosing.py)."""
        if not corrections:
            return
        keys = list(corrections)
        client.command(
            corrections_query(self.database),
            parameters={
                "trace_ids": sorted({trace_id for trace_id, _ in keys}),
                "span_ids": [span_id for _, span_id in keys],
                "agent_names": [corrections[key].agent_name for key in keys],
                "run_ids": [corrections[key].run_id for key in keys],
            },
        )

    def insert_rows(
        self, table: str, column_names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert rows into one of agentwatch's tables (values are sent as data, not SQL)."""
        if not _IDENTIFIER.match(table):
            raise ValueError(f"invalid table name {table!r}")
        self._ensure_schema()
        try:
            self._client().insert(self.table(table), rows, column_names=list(column_names))
        except Exception as exc:
            self._drop_thread_client()
            raise classify_store_error(exc) from exc

    # -- reads -----------------------------------------------------------------------

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run a read query with bound parameters (`{name:Type}` placeholders)."""
        try:
            result = self._client().query(sql, parameters=dict(parameters or {}))
        except Exception as exc:
            self._drop_thread_client()
            raise classify_store_error(exc) from exc
        names: Sequence[str] = result.column_names
        return [dict(zip(names, row, strict=True)) for row in result.result_rows]

    def ping(self) -> bool:
        try:
            self._client().query("SELECT 1")
        except Exception:
            self._drop_thread_client()
            return False
        return True

    def _drop_thread_client(self) -> None:
        """Forget this thread's client after a failure so the next call reconnects."""
        if self.is_embedded:
            return  # the embedded engine has no connection to lose
        client = getattr(self._local, "client", None)
        self._local.client = None
        if client is not None:
            with self._clients_lock:
                if client in self._clients:
                    self._clients.remove(client)
            with contextlib.suppress(Exception):  # the connection is already broken
                client.close()


def _corrections_and_log_rows(
    segment: bytes,
) -> tuple[dict[tuple[str, str], Correction], list[list[Any]]]:
    """What a segment holds besides the spans ClickHouse parses: corrections, log rows."""
    corrections: dict[tuple[str, str], Correction] = {}
    rows: list[list[Any]] = []
    for record in iter_records(segment):
        logs = read_logs_payload(record)
        if logs is not None:
            rows.extend(log_rows(logs))
            continue
        for c in read_corrections(record):
            corrections[(c.trace_id.hex(), c.span_id.hex())] = c
    return corrections, rows


def classify_store_error(exc: BaseException) -> Exception:
    """Split store failures into permanent (bad data) and transient (retry)."""
    if isinstance(exc, PermanentStoreError | TransientStoreError):
        return exc
    if isinstance(exc, DataError | DecodeError | TypeError | ValueError | OverflowError):
        return PermanentStoreError(f"batch cannot be encoded: {exc}")
    if isinstance(exc, ClickHouseError) and _PERMANENT_ERROR.search(str(exc)):
        return PermanentStoreError(str(exc).splitlines()[0][:500])
    return TransientStoreError(str(exc).splitlines()[0][:500] if str(exc) else repr(exc))


def _classify_open_error(exc: BaseException, dsn: str) -> Exception:
    text = str(exc)
    if dsn.startswith("chdb:") and (
        "EmbeddedServer" in text or "lock" in text.lower() or "Code: 36" in text
    ):
        return StoreInUseError(
            f"data dir in use by another agentwatch (or another chDB path in this process): "
            f"{dsn.removeprefix('chdb://')}"
        )
    return TransientStoreError(f"cannot connect to ClickHouse: {text.splitlines()[0][:300]}")

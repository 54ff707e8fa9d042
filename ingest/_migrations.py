"""A tiny migration runner for the numbered `.sql` files in `ingest/schema/`.

Each file is applied once, in order, and recorded in `<db>.schema_migrations`. The
files are templates with three placeholders filled from validated settings only:
`{database}` (an identifier), `{on_cluster}` (empty, or `ON CLUSTER <identifier>`)
and `{retention_days}` (an int) — never from request data.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

_SCHEMA_PACKAGE = "ingest.schema"


def migration_files() -> list[tuple[int, str, str]]:
    """(version, file name, SQL template) for every migration, in version order."""
    found = []
    for entry in resources.files(_SCHEMA_PACKAGE).iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def render(template: str, database: str, retention_days: int, cluster: str = "") -> str:
    return template.format(
        database=database,
        on_cluster=f"ON CLUSTER {cluster}" if cluster else "",
        retention_days=int(retention_days),
    )


def apply_migrations(client: Any, database: str, retention_days: int) -> list[str]:
    """Apply pending migrations; keep the span table's TTL in step with the setting."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
    )
    # `database` is a validated identifier (ClickHouseStore checks it).
    versions = client.query(f"SELECT version FROM {database}.schema_migrations")  # noqa: S608
    applied = {row[0] for row in versions.result_rows}
    newly_applied = []
    for version, name, template in migration_files():
        if version in applied:
            continue
        client.command(render(template, database, retention_days))
        client.insert(
            f"{database}.schema_migrations", [[version, name]], column_names=["version", "name"]
        )
        newly_applied.append(name)
    _sync_retention(client, database, retention_days)
    return newly_applied


# Tables whose TTL follows AGENTWATCH_RETENTION_DAYS, and the time their TTL counts from.
_RETENTION_TTL = {"otel_traces": "toDateTime(Timestamp)", "otel_logs": "TimestampTime"}


def _sync_retention(client: Any, database: str, retention_days: int) -> None:
    """Change the TTLs when AGENTWATCH_RETENTION_DAYS changed since the tables were made."""
    wanted = f"toIntervalDay({int(retention_days)})"
    for table, counted_from in _RETENTION_TTL.items():
        current = client.query(
            "SELECT create_table_query FROM system.tables WHERE database = {db:String} "
            "AND name = {table:String}",
            parameters={"db": database, "table": table},
        ).result_rows
        if current and wanted not in current[0][0]:
            # materialize_ttl_after_modify=0: don't rewrite every part now; the new TTL
            # applies as parts merge and whole day-partitions expire.
            client.command(
                f"ALTER TABLE {database}.{table} MODIFY TTL {counted_from} + {wanted}",
                settings={"materialize_ttl_after_modify": 0},
            )

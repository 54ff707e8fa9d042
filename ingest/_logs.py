"""OTLP log records: validation, the write-ahead-log record, `otel_logs` rows, and the
evaluation results they carry.

Logs are far fewer than spans, so unlike spans (parsed by ClickHouse from the log
segment) they are turned into rows here, with the protobuf runtime. The columns are
the Collector ClickHouse exporter's, filled the way it fills them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from ingest._translate import any_value_to_str, attributes_to_map, drop_invalid_items
from ingest._wal_record import LogsPayload, encode_logs_record, frame

LOG_COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "TraceFlags",
    "SeverityText",
    "SeverityNumber",
    "ServiceName",
    "Body",
    "ResourceSchemaUrl",
    "ResourceAttributes",
    "ScopeSchemaUrl",
    "ScopeName",
    "ScopeVersion",
    "ScopeAttributes",
    "LogAttributes",
    "EventName",
    "TenantId",
)


def log_record_count(request: ExportLogsServiceRequest) -> int:
    return sum(
        len(scope_logs.log_records)
        for resource_logs in request.resource_logs
        for scope_logs in resource_logs.scope_logs
    )


def drop_invalid_log_records(request: ExportLogsServiceRequest) -> tuple[int, str]:
    """Remove log records with malformed ids; return (count, first problem).

    Ids are optional on a log record, but when present a trace id is 16 bytes and a
    span id 8 (OTLP). The rest of the request is kept (partial success).
    """
    scopes = [scope for resources in request.resource_logs for scope in resources.scope_logs]
    rejected, first_problem = drop_invalid_items(scopes, "log_records", _id_problem)
    return rejected, f"{rejected} log record(s) rejected: {first_problem}" if rejected else ""


def _id_problem(record: LogRecord) -> str:
    if len(record.trace_id) not in (0, 16):
        return f"trace_id must be 16 bytes, got {len(record.trace_id)}"
    if len(record.span_id) not in (0, 8):
        return f"span_id must be 8 bytes, got {len(record.span_id)}"
    return ""


def build_logs_record(
    tenant: str, request: ExportLogsServiceRequest, raw: bytes | None = None
) -> bytes:
    """The framed write-ahead-log record for a (validated) logs request."""
    body = raw if raw is not None else request.SerializeToString()
    return frame(encode_logs_record(tenant, body, time.time_ns()))


def event_name(record: LogRecord, attributes: dict[str, str]) -> str:
    """OTLP's `event_name`, else the `event.name` attribute older SDKs set instead."""
    return record.event_name or attributes.get("event.name", "")


def iter_log_entries(payload: bytes) -> Iterator[tuple[Any, Any, Any]]:
    """(resource_logs, scope_logs, log record) for every record of a logs request."""
    request = ExportLogsServiceRequest.FromString(payload)
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield resource_logs, scope_logs, record


def record_time_ns(record: LogRecord, received_ns: int) -> int:
    """The record's time, else its observed time (as the Collector's exporter), else
    when agentwatch received it — OTLP's 0 means "unknown", not 1970."""
    return record.time_unix_nano or record.observed_time_unix_nano or received_ns


def log_rows(logs: LogsPayload) -> list[list[Any]]:
    """`otel_logs` rows (LOG_COLUMNS order) for the records of one logs request."""
    rows: list[list[Any]] = []
    resource_cache: dict[int, tuple[dict[str, str], str]] = {}
    tenant = logs.tenant
    for resource_logs, scope_logs, record in iter_log_entries(logs.request):
        cached = resource_cache.get(id(resource_logs))
        if cached is None:
            resource_attrs = attributes_to_map(resource_logs.resource.attributes)
            cached = resource_attrs, resource_attrs.get("service.name", "")
            resource_cache[id(resource_logs)] = cached
        resource_attrs, service_name = cached
        attrs = attributes_to_map(record.attributes)
        scope = scope_logs.scope
        rows.append(
            [
                record_time_ns(record, logs.received_ns),
                record.trace_id.hex(),
                record.span_id.hex(),
                record.flags & 0xFF,
                record.severity_text,
                record.severity_number & 0xFF,
                service_name,
                any_value_to_str(record.body),
                resource_logs.schema_url,
                resource_attrs,
                scope_logs.schema_url,
                scope.name,
                scope.version,
                attributes_to_map(scope.attributes),
                attrs,
                event_name(record, attrs),
                tenant,
            ]
        )
    return rows

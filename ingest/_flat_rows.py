"""Write-ahead-log segments -> flat span rows (ClickHouse RowBinary) for the store.

ClickHouse could parse the records itself (format Protobuf), but rendering every
attribute value to text in SQL — a multiIf over the AnyValue oneof, JSON for arrays
and maps — was the largest part of the insert: ~17 of ~41 µs per span, and a third
of the query's fixed analysis time. The segment is turned into one row per span here
instead, with attribute maps as text, ids as hex and kind and status as names; the
insert query (`sql/insert_spans.sql`) derives the agent columns and costs from them.

`flat_rows` runs `_flatrows.c`, one pass over the bytes; `flat_rows_python` is the
same in Python: the reference the tests hold the C walker to, and the fallback where
the extension is not built.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from ingest._translate import (
    SPAN_KIND_NAMES,
    STATUS_CODE_NAMES,
    any_value_to_str,
    exception_type,
)
from ingest._wal_record import iter_records, read_envelope, read_logs_payload

try:  # the C walker, built by `pip install -e .`
    from ingest import _flatrows
except ImportError:  # pragma: no cover - exercised only without a C compiler
    _flatrows = None  # type: ignore[assignment]

# The row layout, in RowBinary order (ClickHouse's `structure` argument).
FLAT_STRUCTURE = (
    "Timestamp DateTime64(9), TraceId String, SpanId String, ParentSpanId String, "
    "TraceState String, SpanName String, SpanKind String, ServiceName String, "
    "ResourceAttributes Map(String, String), ScopeName String, ScopeVersion String, "
    "SpanAttributes Map(String, String), Duration UInt64, StatusCode String, "
    "StatusMessage String, EventsTimestamp Array(DateTime64(9)), EventsName Array(String), "
    "EventsAttributes Array(Map(String, String)), LinksTraceId Array(String), "
    "LinksSpanId Array(String), LinksTraceState Array(String), "
    "LinksAttributes Array(Map(String, String)), TenantId String, ResolvedAgent String, "
    "ResolvedRun String, ToolArgsHash String, ExceptionType String"
)

_UINT64 = struct.Struct("<Q")


def flat_rows(segment: bytes) -> bytes:
    """Every span of a segment's records as RowBinary rows (`FLAT_STRUCTURE`)."""
    if _flatrows is None:
        return flat_rows_python(segment)
    try:
        return _flatrows.flat_rows(segment)
    except ValueError:  # input the walker does not take (already validated upstream)
        return flat_rows_python(segment)


def flat_rows_python(segment: bytes) -> bytes:
    """`flat_rows` through the protobuf runtime: the reference, and the fallback."""
    out = bytearray()
    for record in iter_records(segment):
        if read_logs_payload(record) is not None:
            continue
        envelope = read_envelope(record)
        tenant = envelope.tenant.encode()
        request = ExportTraceServiceRequest.FromString(record)
        for resource_spans in request.resource_spans:
            resource = _text_pairs(resource_spans.resource.attributes)
            service = next((value for key, value in resource if key == "service.name"), "")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    resolved = envelope.resolved.get(span.span_id)
                    _uint64(out, span.start_time_unix_nano)
                    for text in (
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.trace_state,
                        span.name,
                        SPAN_KIND_NAMES.get(span.kind, "Unspecified"),
                        service,
                    ):
                        _string(out, text)
                    _map(out, resource)
                    _string(out, scope_spans.scope.name)
                    _string(out, scope_spans.scope.version)
                    _map(out, _text_pairs(span.attributes))
                    _uint64(out, max(0, span.end_time_unix_nano - span.start_time_unix_nano))
                    _string(out, STATUS_CODE_NAMES.get(span.status.code, "Unset"))
                    _string(out, span.status.message)
                    _array(out, [e.time_unix_nano for e in span.events], _uint64)
                    _array(out, [e.name for e in span.events], _string)
                    _array(out, [_text_pairs(e.attributes) for e in span.events], _map)
                    _array(out, [link.trace_id.hex() for link in span.links], _string)
                    _array(out, [link.span_id.hex() for link in span.links], _string)
                    _array(out, [link.trace_state for link in span.links], _string)
                    _array(out, [_text_pairs(link.attributes) for link in span.links], _map)
                    _bytes(out, tenant)
                    _string(out, resolved.agent_name if resolved else "")
                    _string(out, resolved.run_id if resolved else "")
                    _string(out, resolved.tool_args_hash if resolved else "")
                    _string(out, exception_type(span))
    return bytes(out)


def _text_pairs(attributes: Iterable[KeyValue]) -> list[tuple[str, str]]:
    """Every attribute in wire order (a repeated key stays repeated, as OTLP sent it)."""
    return [(kv.key, any_value_to_str(kv.value)) for kv in attributes]


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _bytes(out: bytearray, data: bytes) -> None:
    _varint(out, len(data))
    out += data


def _string(out: bytearray, text: str) -> None:
    _bytes(out, text.encode())


def _uint64(out: bytearray, value: int) -> None:
    out += _UINT64.pack(value)


def _map(out: bytearray, pairs: list[tuple[str, str]]) -> None:
    _varint(out, len(pairs))
    for key, value in pairs:
        _string(out, key)
        _string(out, value)


_Item = TypeVar("_Item")


def _array(out: bytearray, items: list[_Item], write: Callable[[bytearray, _Item], None]) -> None:
    _varint(out, len(items))
    for item in items:
        write(out, item)

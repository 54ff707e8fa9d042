"""Encoding a write-ahead-log record: the OTLP request's bytes plus agentwatch's envelope.

Appending fields to a serialized protobuf message is itself a valid message (the
fields merge), so a record is `request bytes + envelope bytes` with no re-encoding of
the request. Field numbers 1000+ are agentwatch's; no OTLP field uses them:

    1000 tenant       string
    1001 resolved     repeated {1 span_id bytes, 2 agent_name, 3 run_id, 4 tool_args_hash}
    1002 corrections  repeated {1 trace_id bytes, 2 span_id bytes, 3 agent_name, 4 run_id}
    1003 logs         an ExportLogsServiceRequest (a logs record has no resource_spans)
    1004 received_ns  varint (logs records)

Readers: this module, `_agent_spans.py` and `_wirescan.c` (detectors), `_flat_rows.py`
and `_flatrows.c` (the store).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ingest._enclosing import Correction

_TENANT = 1000
_RESOLVED = 1001
_CORRECTIONS = 1002
# A record of log records: the ExportLogsServiceRequest's bytes, nested in this field
# (a logs request cannot be merged into the span schema like a traces request: the
# field numbers overlap with other types).
_LOGS = 1003
_RECEIVED_NS = 1004  # when a logs request was received: the time of records without one
_LENGTH_DELIMITED = 2


@dataclass(frozen=True, slots=True)
class ResolvedSpan:
    """What ingest derived from enclosing spans for one span, stored with it."""

    span_id: bytes
    agent_name: str
    run_id: str
    tool_args_hash: str


_SMALL_VARINTS = [bytes((n,)) for n in range(128)]


def varint(value: int) -> bytes:
    if value < 128:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return varint((number << 3) | _LENGTH_DELIMITED) + varint(len(payload)) + payload


def encode_envelope(
    tenant: str, resolved: Iterable[ResolvedSpan], corrections: Iterable[Correction] = ()
) -> bytes:
    parts = [_field(_TENANT, tenant.encode("utf-8"))]
    for item in resolved:
        body = _field(1, item.span_id)
        if item.agent_name:
            body += _field(2, item.agent_name.encode("utf-8"))
        if item.run_id:
            body += _field(3, item.run_id.encode("utf-8"))
        if item.tool_args_hash:
            body += _field(4, item.tool_args_hash.encode("ascii"))
        parts.append(_field(_RESOLVED, body))
    for correction in corrections:
        body = _field(1, correction.trace_id) + _field(2, correction.span_id)
        if correction.agent_name:
            body += _field(3, correction.agent_name.encode("utf-8"))
        if correction.run_id:
            body += _field(4, correction.run_id.encode("utf-8"))
        parts.append(_field(_CORRECTIONS, body))
    return b"".join(parts)


def encode_logs_record(tenant: str, logs_request: bytes, received_ns: int) -> bytes:
    """An (unframed) record carrying an ExportLogsServiceRequest for `tenant`."""
    return (
        _field(_TENANT, tenant.encode("utf-8"))
        + varint(_RECEIVED_NS << 3)
        + varint(received_ns)
        + _field(_LOGS, logs_request)
    )


def frame(record: bytes) -> bytes:
    """Length-prefix a record, as ClickHouse's Protobuf format (and the WAL) expect."""
    return varint(len(record)) + record


def read_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    """(value, next offset) of the varint at `offset`; None when it is cut short."""
    value = shift = 0
    while offset < len(data):
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7
        if shift > 63:
            return None
    return None


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    decoded = read_varint(data, offset)
    if decoded is None:
        raise ValueError(f"truncated varint at byte {offset}")
    return decoded


def _skip(data: bytes, offset: int, wire_type: int) -> int:
    if wire_type == 0:
        return _read_varint(data, offset)[1]
    if wire_type == 1:
        return offset + 8
    if wire_type == _LENGTH_DELIMITED:
        length, offset = _read_varint(data, offset)
        return offset + length
    if wire_type == 5:
        return offset + 4
    raise ValueError(f"unsupported wire type {wire_type}")


def _fields(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field of a message."""
    offset = 0
    while offset < len(data):
        tag, offset = _read_varint(data, offset)
        number, wire_type = tag >> 3, tag & 7
        start = offset
        if wire_type == _LENGTH_DELIMITED:
            length, start = _read_varint(data, offset)
            offset = start + length
        else:
            offset = _skip(data, offset, wire_type)
        yield number, wire_type, start, offset


def read_corrections(record: bytes) -> list[Correction]:
    """The corrections of one (unframed) record, read without parsing its spans."""
    corrections = []
    for number, _, start, end in _fields(record):
        if number != _CORRECTIONS:
            continue
        values: dict[int, bytes] = {}
        body = record[start:end]
        for field_number, _, field_start, field_end in _fields(body):
            values[field_number] = body[field_start:field_end]
        corrections.append(
            Correction(
                values.get(1, b""),
                values.get(2, b""),
                values.get(3, b"").decode("utf-8", "replace"),
                values.get(4, b"").decode("utf-8", "replace"),
            )
        )
    return corrections


def iter_records(segment: bytes) -> Iterator[bytes]:
    """The records of a segment file's contents (framing as written by `frame`)."""
    offset = 0
    while offset < len(segment):
        length, offset = _read_varint(segment, offset)
        yield segment[offset : offset + length]
        offset += length


@dataclass(frozen=True, slots=True)
class Envelope:
    """The envelope of one record: its tenant and what ingest resolved per span."""

    tenant: str
    resolved: dict[bytes, ResolvedSpan]


def read_envelope(record: bytes) -> Envelope:
    """The tenant and resolved spans of one (unframed) record, without parsing its spans."""
    tenant = ""
    resolved: dict[bytes, ResolvedSpan] = {}
    for number, _, start, end in _fields(record):
        if number == _TENANT:
            tenant = record[start:end].decode("utf-8", "replace")
        elif number == _RESOLVED:
            values: dict[int, bytes] = {}
            body = record[start:end]
            for field_number, _, field_start, field_end in _fields(body):
                values[field_number] = body[field_start:field_end]
            span_id = values.get(1, b"")
            resolved[span_id] = ResolvedSpan(
                span_id,
                values.get(2, b"").decode("utf-8", "replace"),
                values.get(3, b"").decode("utf-8", "replace"),
                values.get(4, b"").decode("ascii", "replace"),
            )
    return Envelope(tenant, resolved)


@dataclass(frozen=True, slots=True)
class LogsPayload:
    """What a logs record carries."""

    tenant: str
    request: bytes  # an ExportLogsServiceRequest
    received_ns: int


def read_logs_payload(record: bytes) -> LogsPayload | None:
    """The logs request of a logs record; None for a spans record."""
    if record[:1] == b"\x0a":  # a spans record starts with the request's resource_spans
        return None
    tenant, payload, received_ns = "", None, 0
    for number, _, start, end in _fields(record):
        if number == _TENANT:
            tenant = record[start:end].decode("utf-8", "replace")
        elif number == _LOGS:
            payload = record[start:end]
        elif number == _RECEIVED_NS:
            received_ns = _read_varint(record, start)[0]
    return None if payload is None else LogsPayload(tenant, payload, received_ns)

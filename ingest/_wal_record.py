"""Encoding a write-ahead-log record: the OTLP request's bytes plus agentwatch's envelope.

Appending fields to a serialized protobuf message is itself a valid message (the
fields merge), so a record is `request bytes + envelope bytes` with no re-encoding of
the request. Field numbers 1000+ are agentwatch's (see sql/otlp_record.proto).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

_TENANT = 1000
_RESOLVED = 1001
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


def encode_envelope(tenant: str, resolved: Iterable[ResolvedSpan]) -> bytes:
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
    return b"".join(parts)


def frame(record: bytes) -> bytes:
    """Length-prefix a record, as ClickHouse's Protobuf format (and the WAL) expect."""
    return varint(len(record)) + record

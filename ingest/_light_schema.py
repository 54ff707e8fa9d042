"""A reduced view of ExportTraceServiceRequest for the receive-side context pass.

Only span ids are decoded; each attribute stays an undecoded `KeyValue` (bytes), so
the pass can look at its key with a slice and decode the few attributes it needs.
Parsing with this schema is several times cheaper than materializing every attribute
as a message in Python. Field numbers are OTLP's (opentelemetry/proto/trace/v1).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "agentwatch.light"
_F = descriptor_pb2.FieldDescriptorProto


def _build() -> Any:
    file = descriptor_pb2.FileDescriptorProto(
        name="agentwatch/light_trace.proto", package=_PACKAGE, syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, field_type, type_name in fields:
            repeated = field_name in ("attributes", "spans", "scope_spans", "resource_spans")
            label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            field = proto.field.add(name=field_name, number=number, type=field_type, label=label)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"

    message(
        "Span",
        ("trace_id", 1, _F.TYPE_BYTES, ""),
        ("span_id", 2, _F.TYPE_BYTES, ""),
        ("parent_span_id", 4, _F.TYPE_BYTES, ""),
        ("attributes", 9, _F.TYPE_BYTES, ""),  # each one a serialized KeyValue
    )
    message("ScopeSpans", ("spans", 2, _F.TYPE_MESSAGE, "Span"))
    message("ResourceSpans", ("scope_spans", 2, _F.TYPE_MESSAGE, "ScopeSpans"))
    message("Request", ("resource_spans", 1, _F.TYPE_MESSAGE, "ResourceSpans"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Request"))


LightRequest = _build()


def attribute_key(serialized: bytes) -> bytes:
    """The key of a serialized KeyValue (field 1, written first by every OTLP encoder).

    Returns b"" when the key is not where encoders put it (then the attribute is
    simply not a context attribute for this pass; ClickHouse still stores it).
    """
    if len(serialized) > 2 and serialized[0] == 0x0A and serialized[1] < 0x80:
        return serialized[2 : 2 + serialized[1]]
    return b""

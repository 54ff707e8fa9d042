"""ExportTraceServiceRequest -> `otel_traces` rows, in Python: the reference mapping.

On the hot path ClickHouse does this itself (`sql/insert_spans.sql` over log records),
because per-attribute work in Python caps ingest near 50 k spans/s per core. This
module is the same mapping written plainly: the executable specification the tests
hold the SQL to, and the helpers the receive path shares (validation, value text).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest._batch import SpanBatch
from ingest._conventions import (
    LLM_OPERATIONS,
    MARKER_KEY,
    PENDING_SPAN_ID,
    derive_agent_fields,
)
from ingest._enclosing import EnclosingResolver, SpanLink, announced_link
from ingest._prices import PriceTable

# The Collector's ClickHouse exporter writes these strings; Grafana's trace view reads them.
SPAN_KIND_NAMES = {
    Span.SPAN_KIND_UNSPECIFIED: "Unspecified",
    Span.SPAN_KIND_INTERNAL: "Internal",
    Span.SPAN_KIND_SERVER: "Server",
    Span.SPAN_KIND_CLIENT: "Client",
    Span.SPAN_KIND_PRODUCER: "Producer",
    Span.SPAN_KIND_CONSUMER: "Consumer",
}
STATUS_CODE_NAMES = {
    Status.STATUS_CODE_UNSET: "Unset",
    Status.STATUS_CODE_OK: "Ok",
    Status.STATUS_CODE_ERROR: "Error",
}


def any_value_to_python(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return int(number) if number.is_integer() and abs(number) < 1e15 else number
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return None


def any_value_to_str(value: AnyValue) -> str:
    """The Collector's `AsString()`: scalars as text, arrays and maps as compact JSON."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _float_text(value.double_value)
    if kind is None:
        return ""
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return json.dumps(any_value_to_python(value), separators=(",", ":"), ensure_ascii=False)


def _float_text(number: float) -> str:
    """Shortest round-trip text, integral values without ".0" (as ClickHouse's toString)."""
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number)


def attributes_to_map(attributes: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: any_value_to_str(kv.value) for kv in attributes}


def exception_type(span: Span) -> str:
    """The first `exception.type` (as a string value) of the span's `exception` events."""
    for event in span.events:
        if event.name == "exception":
            for kv in event.attributes:
                if kv.key == "exception.type":
                    return kv.value.string_value
    return ""


def translate(
    request: ExportTraceServiceRequest,
    tenant: str,
    resolver: EnclosingResolver | None = None,
    prices: PriceTable | None = None,
) -> SpanBatch:
    """Flatten every span of `request` into insert columns, normalized for agents.

    Spans with invalid ids must already have been removed (`drop_invalid_spans`).
    `resolver` carries enclosing-span context across requests (a run's root usually
    arrives after its children); without one, only this request is used. `prices`
    prices the LLM spans (default: the shipped table).
    """
    prices = prices if prices is not None else PriceTable.load()
    batch = SpanBatch()
    links: list[SpanLink] = []
    for resource_spans in request.resource_spans:
        resource_attrs = attributes_to_map(resource_spans.resource.attributes)
        service_name = resource_attrs.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                links.append(_append_span(batch, span, resource_attrs, service_name, scope, prices))
    announced = [
        announced
        for link, attrs in zip(links, batch.SpanAttributes, strict=True)
        if PENDING_SPAN_ID in attrs
        for announced in announced_link(link, attrs[PENDING_SPAN_ID])
    ]
    _fill_enclosing(
        batch, links, announced, resolver or EnclosingResolver(capacity=2 * len(links) + 1)
    )
    batch.TenantId.extend([tenant] * len(links))
    return batch


def _append_span(
    batch: SpanBatch,
    span: Span,
    resource_attrs: dict[str, str],
    service_name: str,
    scope: Any,
    prices: PriceTable,
) -> SpanLink:
    attrs = attributes_to_map(span.attributes)
    fields = derive_agent_fields(attrs)
    trace_id = span.trace_id.hex()
    span_id = span.span_id.hex()
    parent_id = span.parent_span_id.hex()
    status_code = span.status.code
    batch.Timestamp.append(span.start_time_unix_nano)
    batch.TraceId.append(trace_id)
    batch.SpanId.append(span_id)
    batch.ParentSpanId.append(parent_id)
    batch.TraceState.append(span.trace_state)
    batch.SpanName.append(span.name)
    batch.SpanKind.append(SPAN_KIND_NAMES.get(span.kind, "Unspecified"))
    batch.ServiceName.append(service_name)
    batch.ResourceAttributes.append(resource_attrs)
    batch.ScopeName.append(scope.name)
    batch.ScopeVersion.append(scope.version)
    batch.SpanAttributes.append(attrs)
    batch.Duration.append(max(0, span.end_time_unix_nano - span.start_time_unix_nano))
    batch.StatusCode.append(STATUS_CODE_NAMES.get(status_code, "Unset"))
    batch.StatusMessage.append(span.status.message)
    batch.EventsTimestamp.append([e.time_unix_nano for e in span.events])
    batch.EventsName.append([e.name for e in span.events])
    batch.EventsAttributes.append([attributes_to_map(e.attributes) for e in span.events])
    batch.LinksTraceId.append([link.trace_id.hex() for link in span.links])
    batch.LinksSpanId.append([link.span_id.hex() for link in span.links])
    batch.LinksTraceState.append([link.trace_state for link in span.links])
    batch.LinksAttributes.append([attributes_to_map(link.attributes) for link in span.links])
    batch.AgentId.append(fields.agent_id)
    batch.Operation.append(fields.operation)
    batch.ToolName.append(fields.tool_name)
    batch.ToolCallId.append(fields.tool_call_id)
    batch.ToolArgsHash.append(fields.tool_args_hash)
    batch.RequestModel.append(fields.request_model)
    batch.ResponseModel.append(fields.response_model)
    batch.Provider.append(fields.provider)
    batch.InputTokens.append(fields.input_tokens)
    batch.OutputTokens.append(fields.output_tokens)
    is_error = status_code == Status.STATUS_CODE_ERROR
    error_type = fields.error_type or (exception_type(span) if is_error else "")
    batch.ErrorType.append(error_type)
    batch.IsError.append(1 if is_error or error_type else 0)
    marker = attrs.get(MARKER_KEY, "")
    batch.Marker.append(marker)
    cost = None
    if fields.operation in LLM_OPERATIONS and not marker:
        cost = prices.span_cost(
            attrs,
            fields.response_model or fields.request_model,
            fields.provider,
            span.start_time_unix_nano,
            fields.input_tokens,
            fields.output_tokens,
        )
    batch.CostUsd.append(cost.total_usd if cost is not None else None)
    batch.CostPriceId.append(cost.price_id if cost is not None else "")
    return SpanLink(
        span.trace_id, span.span_id, span.parent_span_id, fields.agent_name, fields.run_id
    )


def _fill_enclosing(
    batch: SpanBatch,
    links: list[SpanLink],
    announced: list[SpanLink],
    resolver: EnclosingResolver,
) -> None:
    """AgentName and RunId: the span's own, else an enclosing span's, else the service
    name and the trace id. `announced`: spans known from pending markers only."""
    # Corrections to earlier batches: see the caller.
    attributions, _ = resolver.add(links + announced)
    del attributions[len(links) :]
    for index, (agent_name, run_id) in enumerate(attributions):
        batch.AgentName.append(agent_name or batch.ServiceName[index])
        batch.RunId.append(run_id or batch.TraceId[index])


def span_count(request: ExportTraceServiceRequest) -> int:
    return sum(
        len(scope_spans.spans)
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
    )


def drop_invalid_spans(request: ExportTraceServiceRequest) -> tuple[int, str]:
    """Remove spans whose ids the OTLP spec calls invalid; return (count, message).

    A trace id is 16 bytes and a span id 8 bytes, neither all zero; a parent span id
    is empty or a valid span id. The rest of the request is kept (partial success).
    """
    scopes = [scope for resources in request.resource_spans for scope in resources.scope_spans]
    rejected, first_problem = drop_invalid_items(scopes, "spans", _id_problem)
    return rejected, f"{rejected} span(s) rejected: {first_problem}" if rejected else ""


def drop_invalid_items(
    scopes: Iterable[Any], field: str, problem_of: Callable[[Any], str]
) -> tuple[int, str]:
    """Remove the items (spans, log records) of each scope's repeated `field` that
    `problem_of` finds a problem with; return (count, the first problem)."""
    rejected = 0
    first_problem = ""
    for scope in scopes:
        items = getattr(scope, field)
        keep = []
        for item in items:
            problem = problem_of(item)
            if problem:
                rejected += 1
                first_problem = first_problem or problem
            else:
                keep.append(item)
        if len(keep) != len(items):
            # Copies: the kept messages belong to the list about to be cleared.
            kept = [type(item).FromString(item.SerializeToString()) for item in keep]
            del items[:]
            items.extend(kept)
    return rejected, first_problem


_ZERO_TRACE_ID = bytes(16)
_ZERO_SPAN_ID = bytes(8)


def _id_problem(span: Span) -> str:
    if len(span.trace_id) != 16 or span.trace_id == _ZERO_TRACE_ID:
        return f"invalid trace_id {span.trace_id.hex()!r} (want 16 non-zero bytes)"
    if len(span.span_id) != 8 or span.span_id == _ZERO_SPAN_ID:
        return f"invalid span_id {span.span_id.hex()!r} (want 8 non-zero bytes)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"invalid parent_span_id {span.parent_span_id.hex()!r} (want 8 bytes or empty)"
    return ""

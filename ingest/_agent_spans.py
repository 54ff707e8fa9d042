"""The normalized spans ingest hands to the detectors, read from a stored log segment.

ClickHouse normalizes spans for storage (sql/insert_spans.sql); the detectors need
the same agent fields in Python, as spans stream in. This reads a segment's records
once more — the request bytes are parsed by the protobuf runtime in C — and derives
only what the detectors use, with the same rules (`derive_agent_fields`) and the
same fallbacks as the stored columns: agent = own > enclosing > service name;
run = own > enclosing > trace id.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from ingest._conventions import (
    MARKER_KEY,
    PENDING_NAME,
    PENDING_SPAN_ID,
    StepFields,
    derive_step_fields,
    new_named_tuple,
)
from ingest._insert_sql import convention_key_names
from ingest._resolve import decoded_attributes, scan_spans_decoded

try:
    from ingest import _wirescan
except ImportError:  # not built: the Python pass does the work
    _wirescan = None  # type: ignore[assignment]
from ingest._logs import event_name, iter_log_entries, record_time_ns
from ingest._translate import any_value_to_str
from ingest._wal_record import (
    LogsPayload,
    ResolvedSpan,
    iter_records,
    read_envelope,
    read_logs_payload,
)

_WANTED_KEY_TUPLE = tuple(
    sorted(
        key.encode() for key in {*convention_key_names(), MARKER_KEY, PENDING_SPAN_ID, PENDING_NAME}
    )
)
_ERROR = Status.STATUS_CODE_ERROR
_NO_ATTRIBUTES: dict[str, str] = {}
_NO_FIELDS = StepFields("", "", "", "", 0, 0, "", "", "")
_NOT_RESOLVED = ResolvedSpan(b"", "", "", "")
_NOT_RESOLVED_TUPLE = ("", "", "")


class Evaluation(NamedTuple):
    """A `gen_ai.evaluation.result` event: an evaluator's verdict on the span's output."""

    time_ns: int
    name: str  # gen_ai.evaluation.name
    score: float | None  # gen_ai.evaluation.score.value, when numeric
    label: str  # gen_ai.evaluation.score.label


EVALUATION_EVENT = "gen_ai.evaluation.result"


def evaluation_of(time_ns: int, attrs: dict[str, str]) -> Evaluation:
    text = attrs.get("gen_ai.evaluation.score.value", "")
    try:
        score: float | None = float(text) if text else None
    except ValueError:
        score = None
    if score is not None and not math.isfinite(score):
        score = None
    return Evaluation(
        time_ns,
        attrs.get("gen_ai.evaluation.name", ""),
        score,
        attrs.get("gen_ai.evaluation.score.label", ""),
    )


class AgentSpan(NamedTuple):
    """One span as the detectors see it (ids are lowercase hex, times Unix ns).

    A NamedTuple: one is built per span on the feed path, at a quarter of the cost of
    a frozen dataclass.
    """

    tenant: str
    service_name: str
    service_instance_id: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    agent_name: str
    run_id: str
    operation: str
    tool_name: str
    tool_args_hash: str
    input_tokens: int
    output_tokens: int
    is_error: bool
    error_type: str
    marker: str = ""  # "heartbeat" / "pending" for agentwatch_sdk markers
    pending_span_id: str = ""  # a pending marker: the span that started
    pending_name: str = ""
    model: str = ""  # the response model, else the request model
    provider: str = ""
    # The wanted attributes as text (convention keys, markers, and the caller's extra
    # keys, e.g. a "failure inside a successful result" flag). Shared: do not mutate.
    attributes: dict[str, str] = {}
    evaluations: tuple[Evaluation, ...] = ()

    @property
    def is_marker(self) -> bool:
        return bool(self.marker)


def read_agent_spans(path: Path, extra_keys: tuple[str, ...] = ()) -> list[AgentSpan]:
    """Every span of a log segment file, in record order.

    `extra_keys`: span attributes to read besides the conventions' (at most 16).
    """
    keys = _key_tuple(extra_keys)
    spans: list[AgentSpan] = []
    for record in iter_records(path.read_bytes()):
        spans.extend(record_agent_spans(record, keys))
    return spans


def _key_tuple(extra_keys: tuple[str, ...]) -> tuple[bytes, ...]:
    if not extra_keys:
        return _WANTED_KEY_TUPLE
    if len(extra_keys) > 16:
        raise ValueError("at most 16 extra attribute keys")
    return tuple(sorted({*_WANTED_KEY_TUPLE, *(key.encode() for key in extra_keys)}))


def record_agent_spans(
    record: bytes, keys: tuple[bytes, ...] = _WANTED_KEY_TUPLE
) -> list[AgentSpan]:
    """The spans of one (unframed) log record.

    The C walker reads everything in one pass (`scan_record` in _wirescan.c), so only
    the wanted attributes become Python objects; `record_agent_spans_python` is the
    same in Python — the reference, and the fallback for what the walker refuses.
    """
    logs = read_logs_payload(record)
    if logs is not None:
        return log_evaluation_spans(logs)
    if _wirescan is None:
        return record_agent_spans_python(record, keys)
    try:
        tenant, resolved_by_id, scanned = _wirescan.scan_record(record, keys)
    except ValueError:
        return record_agent_spans_python(record, keys)
    out: list[AgentSpan] = []
    for (
        trace_id,
        span_id,
        parent_span_id,
        name,
        raw_span_id,
        start_ns,
        end_ns,
        status,
        service_name,
        instance_id,
        hits,
        evaluation_events,
    ) in scanned:
        if hits:
            attrs = decoded_attributes(hits)
            fields = derive_step_fields(attrs)
        else:
            attrs, fields = _NO_ATTRIBUTES, _NO_FIELDS
        agent_name, run_id, args_hash = resolved_by_id.get(raw_span_id, _NOT_RESOLVED_TUPLE)
        out.append(
            new_named_tuple(
                AgentSpan,
                (
                    tenant,
                    service_name,
                    instance_id,
                    trace_id,
                    span_id,
                    parent_span_id,
                    name,
                    start_ns,
                    max(end_ns, start_ns),
                    fields.agent_name or agent_name or service_name,
                    fields.run_id or run_id or trace_id,
                    fields.operation,
                    fields.tool_name,
                    args_hash,
                    fields.input_tokens,
                    fields.output_tokens,
                    status == _ERROR or bool(fields.error_type),
                    fields.error_type,
                    attrs.get(MARKER_KEY, ""),
                    attrs.get(PENDING_SPAN_ID, "").lower(),
                    attrs.get(PENDING_NAME, ""),
                    fields.model,
                    fields.provider,
                    attrs,
                    tuple(evaluation_of(t, decoded_attributes(e)) for t, e in evaluation_events)
                    if evaluation_events
                    else (),
                ),
            )
        )
    return out


def record_agent_spans_python(
    record: bytes, keys: tuple[bytes, ...] = _WANTED_KEY_TUPLE
) -> list[AgentSpan]:
    """`record_agent_spans` without `scan_record`: protobuf runtime plus the scan pass."""
    logs = read_logs_payload(record)
    if logs is not None:
        return log_evaluation_spans(logs)
    envelope = read_envelope(record)
    request = ExportTraceServiceRequest.FromString(record)
    scanned = iter(scan_spans_decoded(record, keys))
    out: list[AgentSpan] = []
    for resource_spans in request.resource_spans:
        service_name = instance_id = ""
        for kv in resource_spans.resource.attributes:
            if kv.key == "service.name":
                service_name = any_value_to_str(kv.value)
            elif kv.key == "service.instance.id":
                instance_id = any_value_to_str(kv.value)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                raw_trace_id, raw_span_id, raw_parent_id, hits = next(scanned)
                attrs = decoded_attributes(hits) if hits else _NO_ATTRIBUTES
                fields = derive_step_fields(attrs) if hits else _NO_FIELDS
                resolved = envelope.resolved.get(raw_span_id, _NOT_RESOLVED)
                trace_id = raw_trace_id.hex()
                start_ns = span.start_time_unix_nano
                out.append(
                    AgentSpan(
                        tenant=envelope.tenant,
                        service_name=service_name,
                        service_instance_id=instance_id,
                        trace_id=trace_id,
                        span_id=raw_span_id.hex(),
                        parent_span_id=raw_parent_id.hex(),
                        name=span.name,
                        start_ns=start_ns,
                        end_ns=max(span.end_time_unix_nano, start_ns),
                        agent_name=fields.agent_name or resolved.agent_name or service_name,
                        run_id=fields.run_id or resolved.run_id or trace_id,
                        operation=fields.operation,
                        tool_name=fields.tool_name,
                        tool_args_hash=resolved.tool_args_hash,
                        input_tokens=fields.input_tokens,
                        output_tokens=fields.output_tokens,
                        is_error=span.status.code == _ERROR or bool(fields.error_type),
                        error_type=fields.error_type,
                        marker=attrs.get(MARKER_KEY, ""),
                        pending_span_id=attrs.get(PENDING_SPAN_ID, "").lower(),
                        pending_name=attrs.get(PENDING_NAME, ""),
                        model=fields.model,
                        provider=fields.provider,
                        attributes=attrs,
                        evaluations=tuple(
                            evaluation_of(
                                event.time_unix_nano,
                                {kv.key: any_value_to_str(kv.value) for kv in event.attributes},
                            )
                            for event in span.events
                            if event.name == EVALUATION_EVENT
                        ),
                    )
                )
    return out


EVALUATION_MARKER = "evaluation"


def log_evaluation_spans(logs: LogsPayload) -> list[AgentSpan]:
    """The `gen_ai.evaluation.result` log records of a logs request, as marker spans.

    Current GenAI instrumentations emit evaluation results as log records (events)
    rather than span events. Each becomes a span-shaped carrier (marker "evaluation")
    with the record's trace and span ids; its agent is the record's own
    `gen_ai.agent.name` when set, else "" for the detectors to join from the trace.
    """
    out: list[AgentSpan] = []
    tenant = logs.tenant
    for resource_logs, _, record in iter_log_entries(logs.request):
        attrs = {kv.key: any_value_to_str(kv.value) for kv in record.attributes}
        if event_name(record, attrs) != EVALUATION_EVENT:
            continue
        service_name = instance_id = ""
        for kv in resource_logs.resource.attributes:
            if kv.key == "service.name":
                service_name = any_value_to_str(kv.value)
            elif kv.key == "service.instance.id":
                instance_id = any_value_to_str(kv.value)
        at_ns = record_time_ns(record, logs.received_ns)
        trace_id = record.trace_id.hex()
        out.append(
            AgentSpan(
                tenant=tenant,
                service_name=service_name,
                service_instance_id=instance_id,
                trace_id=trace_id,
                span_id=record.span_id.hex(),
                parent_span_id="",
                name=EVALUATION_EVENT,
                start_ns=at_ns,
                end_ns=at_ns,
                agent_name=attrs.get("gen_ai.agent.name", ""),
                run_id=attrs.get("gen_ai.conversation.id", "") or trace_id,
                operation="",
                tool_name="",
                tool_args_hash="",
                input_tokens=0,
                output_tokens=0,
                is_error=False,
                error_type="",
                marker=EVALUATION_MARKER,
                evaluations=(evaluation_of(at_ns, attrs),),
            )
        )
    return out

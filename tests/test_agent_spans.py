"""The detectors' view of a log record agrees with the stored columns (the reference)."""

from __future__ import annotations

import importlib.util
import secrets
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from ingest import (
    AgentSpan,
    EnclosingResolver,
    Evaluation,
    _agent_spans,
    _resolve,
    record_agent_spans,
    translate,
)
from ingest._logs import build_logs_record
from ingest._resolve import _attribute, build_record
from ingest._wal_record import iter_records, read_logs_payload
from tests.otlp import kv, make_request, make_span


def _agent_traffic(runs: int, announce: bool = False) -> list[ExportTraceServiceRequest]:
    """Runs split the way exporters send them: steps first, the agent root last.

    With `announce`, every other run starts with agentwatch_sdk's pending marker for
    its root (sent when the root starts, with the agent's name and conversation).
    """
    requests = []
    for n in range(runs):
        trace_id = secrets.token_bytes(16)
        root_id = secrets.token_bytes(8)
        if announce and n % 2 == 0:
            marker = make_span(
                "agentwatch.pending",
                trace_id,
                attributes={
                    "agentwatch.marker": "pending",
                    "agentwatch.pending.span_id": root_id.hex(),
                    "agentwatch.pending.name": "invoke_agent billing",
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "billing",
                    "gen_ai.conversation.id": f"conv-{n}",
                },
            )
            requests.append(make_request([marker], service="billing-svc"))
        steps = [
            make_span(
                "chat gpt-4o",
                trace_id,
                parent=root_id,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.response.model": f"gpt-4o-{n % 2}",
                    "gen_ai.provider.name": "OpenAI",
                    "gen_ai.usage.input_tokens": 100 + n,
                    "gen_ai.usage.output_tokens": "7",
                },
            ),
            make_span(
                "execute_tool crm.lookup",
                trace_id,
                parent=root_id,
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "crm.lookup",
                    "gen_ai.tool.call.arguments": f'{{"id": {n % 3}, "q": "x"}}',
                    "error.type": "Timeout" if n % 4 == 0 else "",
                },
            ),
            make_span(
                "execute_tool search",
                trace_id,
                parent=root_id,
                attributes={"openinference.span.kind": "TOOL", "tool.name": "search"},
            ),
        ]
        root = make_span(
            "invoke_agent billing",
            trace_id,
            span_id=root_id,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "billing",
                "gen_ai.conversation.id": f"conv-{n}",
            },
        )
        requests += [make_request(steps, service="billing-svc"), make_request([root])]
    return requests


def _records(requests: list[ExportTraceServiceRequest]) -> list[bytes]:
    resolver = EnclosingResolver()
    records: list[bytes] = []
    for request in requests:
        records.extend(iter_records(build_record("acme", request, resolver)))
    return records


@pytest.fixture(params=["c-walker", "python"])
def walker(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both passes: the C walker when built, and the pure-Python one it falls back to."""
    if request.param == "python":
        monkeypatch.setattr(_resolve, "_wirescan", None)
        monkeypatch.setattr(_agent_spans, "_wirescan", None)
    elif importlib.util.find_spec("ingest._wirescan") is None:
        pytest.skip("the C walker was not built")
    return str(request.param)


@pytest.mark.parametrize("announce", [False, True])
def test_agent_fields_match_the_reference_translation(walker: str, announce: bool) -> None:
    requests = _agent_traffic(40, announce)
    spans = [span for record in _records(requests) for span in record_agent_spans(record)]
    resolver = EnclosingResolver()
    expected = [translate(request, "acme", resolver) for request in requests]

    columns = [
        (
            batch.TraceId[i],
            batch.SpanId[i],
            batch.ParentSpanId[i],
            batch.ServiceName[i],
            batch.AgentName[i],
            batch.RunId[i],
            batch.Operation[i],
            batch.ToolName[i],
            batch.ToolArgsHash[i],
            batch.InputTokens[i],
            batch.OutputTokens[i],
            batch.Timestamp[i],
            batch.Timestamp[i] + batch.Duration[i],
            batch.ResponseModel[i] or batch.RequestModel[i],
            batch.Provider[i],
        )
        for batch in expected
        for i in range(len(batch.SpanId))
    ]
    seen = [
        (
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.service_name,
            s.agent_name,
            s.run_id,
            s.operation,
            s.tool_name,
            s.tool_args_hash,
            s.input_tokens,
            s.output_tokens,
            s.start_ns,
            s.end_ns,
            s.model,
            s.provider,
        )
        for s in spans
    ]
    assert len(seen) == (180 if announce else 160)  # 4 spans a run, a marker every other
    assert seen == columns
    assert {s.tenant for s in spans} == {"acme"}
    assert any(s.tool_name for s in spans)
    assert {s.model for s in spans} >= {"gpt-4o-0", "gpt-4o-1"}
    assert "openai" in {s.provider for s in spans}
    assert any(s.tool_args_hash for s in spans)
    errors = [s.is_error for s in spans]
    assert errors == [bool(flag) for batch in expected for flag in batch.IsError]
    assert any(errors)


def test_markers_and_the_service_instance_are_read(walker: str) -> None:
    marker = make_span(
        "agentwatch.pending",
        attributes={
            "agentwatch.marker": "pending",
            "agentwatch.pending.span_id": "ABCDEF0123456789",
            "agentwatch.pending.name": "execute_tool crm.lookup",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "crm.lookup",
        },
    )
    request = make_request([marker], service="support-svc")
    request.resource_spans[0].resource.attributes.append(kv("service.instance.id", "host-1"))

    (span,) = [s for record in _records([request]) for s in record_agent_spans(record)]

    assert isinstance(span, AgentSpan)
    assert (span.marker, span.pending_span_id, span.pending_name) == (
        "pending",
        "abcdef0123456789",
        "execute_tool crm.lookup",
    )
    assert (span.service_name, span.service_instance_id) == ("support-svc", "host-1")
    assert (span.operation, span.tool_name) == ("execute_tool", "crm.lookup")
    assert span.is_marker


@pytest.mark.parametrize(
    "value", ["", "plain", "ünïcode ✓", "x" * 127, "x" * 128, "y" * 5000, 42, -7]
)
def test_attribute_values_decode_like_the_protobuf_runtime(value: str | int) -> None:
    serialized = kv("gen_ai.tool.name", value).SerializeToString()
    assert _attribute(serialized) == ("gen_ai.tool.name", str(value))


def _odd_requests() -> list[ExportTraceServiceRequest]:
    """What the one-pass C reader must handle exactly like the protobuf runtime."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    failing = make_span(
        "call", attributes={"gen_ai.tool.name": "t", "gen_ai.usage.input_tokens": 3}
    )
    failing.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="boom"))
    failing.end_time_unix_nano = failing.start_time_unix_nano - 5  # ends before it starts
    doubled = make_request([make_span("a")], service="first")
    doubled.resource_spans.add().CopyFrom(
        make_request([failing], service="second").resource_spans[0]
    )
    numeric = make_request([make_span("n")])
    numeric.resource_spans[0].resource.attributes.append(
        KeyValue(key="service.instance.id", value=AnyValue(int_value=7))
    )
    float_service = make_request([make_span("f")])
    del float_service.resource_spans[0].resource.attributes[:]
    float_service.resource_spans[0].resource.attributes.append(
        KeyValue(key="service.name", value=AnyValue(double_value=1.5))
    )
    no_resource = make_request([make_span("bare")])
    no_resource.resource_spans[0].ClearField("resource")
    return [doubled, numeric, float_service, no_resource, *_agent_traffic(3)]


@pytest.mark.skipif(
    importlib.util.find_spec("ingest._wirescan") is None, reason="the C walker was not built"
)
@pytest.mark.parametrize("request_", _odd_requests())
def test_one_pass_c_reader_matches_the_python_reader(request_: ExportTraceServiceRequest) -> None:
    for record in _records([request_]):
        assert record_agent_spans(record) == _agent_spans.record_agent_spans_python(record)


def test_a_resource_written_after_its_spans_still_names_them() -> None:
    request = make_request([make_span("late resource")], service="svc-late")
    resource_spans = request.resource_spans[0]
    # Field order on the wire: scope_spans (2) before resource (1), which is legal.
    scope = resource_spans.scope_spans[0].SerializeToString()
    resource = resource_spans.resource.SerializeToString()
    swapped = b"\x12" + _varint(len(scope)) + scope + b"\x0a" + _varint(len(resource)) + resource
    body = b"\x0a" + _varint(len(swapped)) + swapped
    record = body + b"\xc2\x3e\x04acme"  # field 1000 (tenant) = "acme"

    (span,) = record_agent_spans(record)

    assert span.service_name == "svc-late"
    assert span.tenant == "acme"
    assert record_agent_spans(record) == _agent_spans.record_agent_spans_python(record)


def _varint(value: int) -> bytes:
    from ingest._wal_record import varint

    return varint(value)


def test_evaluation_events_are_read(walker: str) -> None:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    span = make_span("chat", attributes={"gen_ai.operation.name": "chat"})
    span.events.add(name="exception", attributes=[kv("exception.type", "Boom")])
    evaluation = span.events.add(name="gen_ai.evaluation.result", time_unix_nano=1234)
    evaluation.attributes.extend(
        [
            kv("gen_ai.evaluation.name", "relevance"),
            KeyValue(key="gen_ai.evaluation.score.value", value=AnyValue(double_value=0.25)),
            kv("gen_ai.evaluation.score.label", "poor"),
        ]
    )
    labelled = span.events.add(name="gen_ai.evaluation.result", time_unix_nano=1235)
    labelled.attributes.extend(
        [kv("gen_ai.evaluation.name", "faithful"), kv("gen_ai.evaluation.score.label", "pass")]
    )
    (record,) = _records([make_request([span])])

    (read,) = record_agent_spans(record)

    assert read.evaluations == (
        Evaluation(1234, "relevance", 0.25, "poor"),
        Evaluation(1235, "faithful", None, "pass"),
    )
    assert [read] == _agent_spans.record_agent_spans_python(record)


def test_steps_under_an_announced_agent_span_take_its_agent_as_they_arrive(walker: str) -> None:
    spans = [
        span
        for record in _records(_agent_traffic(10, announce=True))
        for span in record_agent_spans(record)
        if span.operation in ("chat", "execute_tool")
    ]
    by_run = {(span.agent_name, span.run_id) for span in spans}

    # Announced runs: the agent and conversation from the marker. The others: their
    # root arrives last, so their steps fall back to the service and the trace id.
    assert {("billing", f"conv-{n}") for n in range(0, 10, 2)} <= by_run
    assert {agent for agent, run in by_run if not run.startswith("conv-")} == {"billing-svc"}
    assert len(by_run) == 10


def _logs_request() -> ExportLogsServiceRequest:
    def record(event: str, score: float, **extra: str) -> LogRecord:
        attributes = [
            kv("gen_ai.evaluation.name", "helpfulness"),
            kv("gen_ai.evaluation.score.value", score),
            *(kv(key, value) for key, value in extra.items()),
        ]
        return LogRecord(
            time_unix_nano=1_700_000_000_000_000_000,
            trace_id=bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736"),
            span_id=bytes.fromhex("00f067aa0ba902b7"),
            event_name=event,
            attributes=attributes,
        )

    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=Resource(attributes=[kv("service.name", "support-svc")]),
                scope_logs=[
                    ScopeLogs(
                        log_records=[
                            record("gen_ai.evaluation.result", 0.75),
                            record("gen_ai.client.inference.operation.details", 0.1),
                            record("", 0.25, **{"event.name": "gen_ai.evaluation.result"}),
                        ]
                    )
                ],
            )
        ]
    )


@pytest.mark.parametrize("reader", [record_agent_spans, _agent_spans.record_agent_spans_python])
def test_evaluation_log_records_become_evaluation_carriers(reader: Any) -> None:
    framed = build_logs_record("acme", _logs_request())
    (record,) = iter_records(framed)

    carriers = reader(record)

    assert [c.evaluations for c in carriers] == [
        (Evaluation(1_700_000_000_000_000_000, "helpfulness", 0.75, ""),),
        (Evaluation(1_700_000_000_000_000_000, "helpfulness", 0.25, ""),),  # older SDKs
    ]
    first = carriers[0]
    assert (first.tenant, first.service_name, first.marker) == ("acme", "support-svc", "evaluation")
    assert (first.trace_id, first.span_id) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
    )
    assert first.agent_name == ""  # the detectors join it from the trace


def test_a_spans_record_has_no_logs_payload_and_a_logs_record_has_one() -> None:
    (spans_record,) = iter_records(build_record("acme", _agent_traffic(1)[0], EnclosingResolver()))

    assert read_logs_payload(spans_record) is None
    before_ns = time.time_ns()
    (logs_record,) = iter_records(build_logs_record("acme", _logs_request()))
    payload = read_logs_payload(logs_record)
    assert payload is not None
    assert (payload.tenant, payload.request) == ("acme", _logs_request().SerializeToString())
    assert before_ns <= payload.received_ns <= time.time_ns()

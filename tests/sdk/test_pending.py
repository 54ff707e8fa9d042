"""agentwatch_sdk.PendingSpanProcessor with the real OpenTelemetry SDK."""

from __future__ import annotations

from typing import Any

from agentwatch_sdk import (
    PendingSpanProcessor,
    configure,
    heartbeat,
)
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from tests.sdk.support import (
    GENAI_AGENT,
    FakeClock,
    Pipeline,
    RecordingProcessor,
)
from tests.sdk.support import attrs as _attrs
from tests.sdk.support import ctx as _ctx

# --- pending-span markers -------------------------------------------------------------


def test_pending_marker_is_emitted_when_a_genai_span_starts() -> None:
    pipeline = Pipeline(pending=True)
    with pipeline.tracer.start_as_current_span(
        "invoke_agent billing-agent", attributes=GENAI_AGENT
    ):
        step = pipeline.tracer.start_span(
            "execute_tool crm.lookup",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "crm.lookup",
                "gen_ai.tool.call.arguments": '{"id": 1}',
            },
        )
        assert isinstance(step, Span)  # the SDK's span: it has a parent, a start time, ...
        # The step has not ended: only the markers have been exported so far.
        assert [span.name for span in pipeline.spans()] == ["agentwatch.pending"] * 2
        marker = pipeline.spans()[1]
        step.end()

    started = step.get_span_context()
    assert _ctx(marker).trace_id == started.trace_id
    assert _ctx(marker).span_id not in (started.span_id, 0)
    assert marker.parent == step.parent
    assert marker.start_time == marker.end_time == step.start_time
    assert _attrs(marker) == {
        "agentwatch.marker": "pending",
        "agentwatch.pending.span_id": format(started.span_id, "016x"),
        "agentwatch.pending.name": "execute_tool crm.lookup",
        "agentwatch.pending.start_time_unix_nano": step.start_time,
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "crm.lookup",
    }
    assert marker.resource is step.resource
    assert marker.instrumentation_scope == step.instrumentation_scope
    assert _ctx(marker).trace_flags == started.trace_flags
    # The spans themselves are exported unchanged when they end.
    names = [span.name for span in pipeline.spans()]
    assert names[2:] == ["execute_tool crm.lookup", "invoke_agent billing-agent"]


def test_pending_marker_of_a_root_span_is_a_root_and_copies_run_attributes() -> None:
    pipeline = Pipeline(pending=True)
    with pipeline.tracer.start_as_current_span(
        "invoke_agent billing-agent", attributes=GENAI_AGENT
    ):
        pass

    marker = pipeline.one("agentwatch.pending")
    assert marker.parent is None
    for key, value in GENAI_AGENT.items():
        assert _attrs(marker)[key] == value


def test_pending_markers_only_for_agent_spans_by_default() -> None:
    pipeline = Pipeline(pending=True)
    with pipeline.tracer.start_as_current_span("GET /health"):
        pass
    with pipeline.tracer.start_as_current_span(
        "oi", attributes={"openinference.span.kind": "TOOL"}
    ):
        pass

    markers = pipeline.spans("agentwatch.pending")
    assert [_attrs(m)["agentwatch.pending.name"] for m in markers] == ["oi"]


def test_pending_markers_for_every_span_with_all_spans() -> None:
    pipeline = Pipeline(pending=True, all_spans=True)
    with pipeline.tracer.start_as_current_span("GET /health"):
        pass

    marker = pipeline.one("agentwatch.pending")
    assert _attrs(marker)["agentwatch.pending.name"] == "GET /health"
    assert "gen_ai.operation.name" not in _attrs(marker)


def test_no_pending_marker_for_marker_spans(clock: FakeClock) -> None:
    pipeline = Pipeline(pending=True, all_spans=True)
    configure(tracer_provider=pipeline.provider, clock=clock)
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat() is True

    pending = pipeline.spans("agentwatch.pending")
    assert [_attrs(m)["agentwatch.pending.name"] for m in pending] == ["run"]
    assert len(pipeline.spans("agentwatch.heartbeat")) == 1


class RecordOnly(Sampler):
    """Spans are recorded (processors see them start) but not sampled (not exported)."""

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY)

    def get_description(self) -> str:
        return "RecordOnly"


def test_no_pending_marker_exported_for_unsampled_spans() -> None:
    exporter = InMemorySpanExporter()
    sink = RecordingProcessor()
    provider = TracerProvider(sampler=RecordOnly())
    provider.add_span_processor(PendingSpanProcessor(SimpleSpanProcessor(exporter)))
    provider.add_span_processor(sink)
    provider.add_span_processor(PendingSpanProcessor(SimpleSpanProcessor(exporter)))
    with provider.get_tracer("t").start_as_current_span("s", attributes=GENAI_AGENT):
        pass
    assert sink.calls == ["start s", "end s"]  # the span was recorded: on_start ran
    assert exporter.get_finished_spans() == ()


def test_pending_processor_forwards_every_call_to_the_next_processor() -> None:
    sink = RecordingProcessor()
    provider = TracerProvider()
    processor = PendingSpanProcessor(sink)
    provider.add_span_processor(processor)
    with provider.get_tracer("t").start_as_current_span("chat", attributes=GENAI_AGENT):
        pass
    assert processor.force_flush(1234)
    processor.shutdown()

    assert sink.calls == [
        "start chat",
        "end agentwatch.pending",
        "end chat",
        "flush 1234",
        "shutdown",
    ]

"""agentwatch_sdk (the agent-side distribution in `sdk/`) with the real OpenTelemetry SDK.

Spans go through a real `TracerProvider` into an `InMemorySpanExporter` via a
`SimpleSpanProcessor`, and, in the last test, through the real OTLP/gRPC exporter
into a real agentwatch. The package lives in `sdk/`, a separate distribution that
may not be installed in this environment, so `sdk/` goes first on `sys.path` here
(when it is installed editable, that is the same source).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import StatusCode

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
if str(SDK_DIR) not in sys.path:
    sys.path.insert(0, str(SDK_DIR))

import agentwatch_sdk  # noqa: E402
from agentwatch_sdk import (  # noqa: E402
    PendingSpanProcessor,
    configure,
    current_tool_call,
    heartbeat,
    tool_call,
)

from examples.send_agent_trace import make_exporter  # noqa: E402
from ingest._conventions import _args_hash  # noqa: E402
from tests.harness import AgentwatchThread, wait_for  # noqa: E402

GENAI_AGENT = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "billing-agent",
    "gen_ai.conversation.id": "conv-7",
}


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pipeline:
    """A real TracerProvider exporting to memory, optionally through PendingSpanProcessor."""

    def __init__(self, *, pending: bool = False, all_spans: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.resource = Resource.create({"service.name": "sdk-test"})
        self.provider = TracerProvider(resource=self.resource)
        exporting: SpanProcessor = SimpleSpanProcessor(self.exporter)
        if pending:
            exporting = PendingSpanProcessor(exporting, all_spans=all_spans)
        self.provider.add_span_processor(exporting)
        self.tracer = self.provider.get_tracer("agent.app", "1.2.3")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = self.exporter.get_finished_spans()
        return [span for span in found if name is None or span.name == name]

    def one(self, name: str) -> ReadableSpan:
        matching = self.spans(name)
        assert len(matching) == 1, [span.name for span in self.spans()]
        return matching[0]


class RecordingProcessor(SpanProcessor):
    """A small sink that remembers what reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.calls.append(f"start {span.name}")

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(f"end {span.name}")

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append(f"flush {timeout_millis}")
        return True


def _ctx(span: ReadableSpan) -> trace.SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


@pytest.fixture(autouse=True)
def _default_configuration() -> Iterator[None]:
    """Each test configures the SDK itself; none leaks its provider or clock."""
    configure()
    yield
    configure()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- public surface -------------------------------------------------------------------


def test_public_surface_is_deliberate() -> None:
    assert sorted(agentwatch_sdk.__all__) == [
        "PendingSpanProcessor",
        "ToolCall",
        "ToolCallHandle",
        "configure",
        "current_tool_call",
        "heartbeat",
        "tool_call",
    ]
    for name in agentwatch_sdk.__all__:
        assert getattr(agentwatch_sdk, name) is not None


def test_importing_the_package_does_not_import_the_opentelemetry_sdk() -> None:
    code = (
        "import sys, agentwatch_sdk; agentwatch_sdk.heartbeat(); "
        "assert not [m for m in sys.modules if m.startswith('opentelemetry.sdk')], 'sdk loaded'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SDK_DIR)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "kwargs",
    [
        {"heartbeat_interval_s": -1},
        {"heartbeat_interval_s": float("nan")},
        {"max_argument_chars": -5},
    ],
)
def test_configure_rejects_bad_values_at_set_up(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        configure(**kwargs)


# --- heartbeat ------------------------------------------------------------------------


def test_heartbeat_emits_a_zero_duration_marker_linked_to_the_current_span(
    clock: FakeClock,
) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, clock=clock)
    with pipeline.tracer.start_as_current_span("invoke_agent billing-agent") as run:
        assert heartbeat(step=3, phase="plan") is True

    marker = pipeline.one("agentwatch.heartbeat")
    run_context = run.get_span_context()
    assert _ctx(marker).trace_id == run_context.trace_id
    assert marker.parent is not None
    assert marker.parent.span_id == run_context.span_id
    assert marker.start_time == marker.end_time
    assert marker.kind is trace.SpanKind.INTERNAL
    assert _attrs(marker) == {
        "agentwatch.marker": "heartbeat",
        "agentwatch.heartbeat.seq": 1,
        "step": 3,
        "phase": "plan",
    }
    assert marker.resource == pipeline.resource
    assert marker.instrumentation_scope is not None
    assert marker.instrumentation_scope.name == "agentwatch_sdk"


def test_heartbeat_is_rate_limited_per_trace_until_the_interval_passes(clock: FakeClock) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, clock=clock)
    emitted = []
    with pipeline.tracer.start_as_current_span("run"):
        for advance in (0.0, 0.0, 1.0, 3.5, 0.5, 4.75, 0.25):  # exact in binary
            clock.now += advance
            emitted.append(heartbeat())

    assert emitted == [True, False, False, False, True, False, True]
    seqs = [
        _attrs(span)["agentwatch.heartbeat.seq"] for span in pipeline.spans("agentwatch.heartbeat")
    ]
    assert seqs == [1, 2, 3]


def test_heartbeat_interval_is_configurable(clock: FakeClock) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, heartbeat_interval_s=0.0, clock=clock)
    with pipeline.tracer.start_as_current_span("run"):
        assert [heartbeat() for _ in range(3)] == [True, True, True]
    configure(tracer_provider=pipeline.provider, heartbeat_interval_s=60.0, clock=clock)
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat() is True
        clock.now += 59.0
        assert heartbeat() is False


def test_heartbeat_rate_limit_is_per_trace_and_per_thread_with_seq_per_trace(
    clock: FakeClock,
) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, clock=clock)
    results: list[bool] = []
    with pipeline.tracer.start_as_current_span("run-a") as run_a:
        assert heartbeat() is True
        context = trace.set_span_in_context(run_a)

        def other_thread() -> None:
            with trace.use_span(trace.get_current_span(context)):
                results.append(heartbeat())

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
        assert heartbeat() is False  # this thread's slot in run-a is still taken
    with pipeline.tracer.start_as_current_span("run-b"):
        assert heartbeat() is True

    assert results == [True]
    by_trace: dict[int, list[int]] = {}
    for span in pipeline.spans("agentwatch.heartbeat"):
        by_trace.setdefault(_ctx(span).trace_id, []).append(
            _attrs(span)["agentwatch.heartbeat.seq"]
        )
    assert sorted(by_trace.values()) == [[1], [1, 2]]


def test_heartbeat_outside_any_span_emits_nothing(clock: FakeClock) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, clock=clock)
    assert heartbeat() is False
    assert pipeline.spans() == []


def test_heartbeat_never_raises_without_a_provider() -> None:
    pipeline = Pipeline()  # a run is current, but the SDK itself has no provider
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat(step=1) is False
    assert pipeline.spans("agentwatch.heartbeat") == []
    assert heartbeat() is False  # and with no span at all


class _BrokenProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        raise RuntimeError("telemetry is down")


def test_heartbeat_never_raises_when_telemetry_breaks() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=_BrokenProvider())
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat() is False
    configure(tracer_provider=pipeline.provider, heartbeat_interval_s=0)
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat(bad=object()) is True  # type: ignore[arg-type]  # dropped by OTel


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


# --- tool calls -----------------------------------------------------------------------


def test_tool_call_context_manager_records_the_call_per_genai_conventions() -> None:
    pipeline = Pipeline(pending=True)
    configure(tracer_provider=pipeline.provider)
    with (
        pipeline.tracer.start_as_current_span("run") as run,
        tool_call("crm.lookup", arguments={"customer": "c-1", "n": 2}, call_id="call_9") as call,
    ):
        inner = pipeline.tracer.start_span("http GET")
        inner.end()

    span = pipeline.one("execute_tool crm.lookup")
    assert call.call_id == "call_9"
    assert span.kind is trace.SpanKind.INTERNAL
    assert span.parent is not None
    assert span.parent.span_id == run.get_span_context().span_id
    assert _attrs(span) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "crm.lookup",
        "gen_ai.tool.call.id": "call_9",
        "gen_ai.tool.call.arguments": '{"customer":"c-1","n":2}',
        "agentwatch.tool.call.arguments_hash": _args_hash('{"n": 2, "customer": "c-1"}'),
    }
    assert span.status.status_code is StatusCode.UNSET
    # The tool span is current inside the block, and announced when it starts.
    assert pipeline.one("http GET").parent == span.get_span_context()
    marker = pipeline.one("agentwatch.pending")
    assert _attrs(marker)["agentwatch.pending.span_id"] == format(_ctx(span).span_id, "016x")
    assert _attrs(marker)["gen_ai.tool.name"] == "crm.lookup"


def test_tool_call_generates_a_call_id_and_omits_absent_arguments() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with tool_call("search") as first, tool_call("search") as second:
        pass
    assert first.call_id.startswith("call_")
    assert first.call_id != second.call_id
    for span in pipeline.spans():
        assert "gen_ai.tool.call.arguments" not in _attrs(span)
        assert _attrs(span)["gen_ai.tool.call.id"] in (first.call_id, second.call_id)


class Upstream:
    class Timeout(Exception):
        pass


def test_tool_call_records_an_exception_and_reraises_it() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with pytest.raises(Upstream.Timeout, match="crm took 30s"), tool_call("crm.lookup"):
        raise Upstream.Timeout("crm took 30s")

    span = pipeline.one("execute_tool crm.lookup")
    assert _attrs(span)["error.type"] == "Upstream.Timeout"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "crm took 30s"
    assert [event.name for event in span.events] == ["exception"]
    assert dict(span.events[0].attributes or {})["exception.message"] == "crm took 30s"


def test_tool_call_cancellation_is_not_a_tool_failure() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with pytest.raises(KeyboardInterrupt), tool_call("slow"):
        raise KeyboardInterrupt

    span = pipeline.one("execute_tool slow")
    assert "error.type" not in _attrs(span)
    assert span.status.status_code is StatusCode.UNSET


def test_mark_failed_records_a_failure_reported_inside_a_result() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with tool_call("crm.lookup", arguments={"customer": "c-404"}) as call:
        result = {"ok": False, "error": "no such customer"}
        if not result["ok"]:
            call.mark_failed("NotFound", str(result["error"]))

    span = pipeline.one("execute_tool crm.lookup")
    assert _attrs(span)["error.type"] == "NotFound"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "no such customer"


def test_tool_call_decorator_records_the_bound_arguments_of_each_call() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)

    @tool_call("crm.lookup")
    def lookup(customer: str, limit: int = 10, **filters: str) -> str:
        return f"{customer}:{limit}"

    assert lookup.__name__ == "lookup"
    assert lookup("c-1") == "c-1:10"
    assert lookup(customer="c-2", limit=3, region="eu") == "c-2:3"

    calls = pipeline.spans("execute_tool crm.lookup")
    arguments = [json.loads(_attrs(span)["gen_ai.tool.call.arguments"]) for span in calls]
    assert arguments == [
        {"customer": "c-1", "limit": 10},
        {"customer": "c-2", "limit": 3, "region": "eu"},
    ]
    call_ids = {_attrs(span)["gen_ai.tool.call.id"] for span in calls}
    assert len(call_ids) == 2


def test_tool_call_decorator_leaves_self_out_and_reraises() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)

    class Crm:
        @tool_call("crm.delete")
        def delete(self, customer: str) -> None:
            raise PermissionError(f"may not delete {customer}")

    with pytest.raises(PermissionError):
        Crm().delete("c-1")

    span = pipeline.one("execute_tool crm.delete")
    assert _attrs(span)["gen_ai.tool.call.arguments"] == '{"customer":"c-1"}'
    assert _attrs(span)["error.type"] == "PermissionError"
    assert span.status.status_code is StatusCode.ERROR


def test_tool_call_decorator_on_async_functions_spans_the_awaited_call() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)

    @tool_call("web.fetch")
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        inner = pipeline.tracer.start_span("inside")  # the tool span is current here
        inner.end()
        handle = current_tool_call()
        assert handle is not None
        if url.endswith("/404"):
            handle.mark_failed("HTTPError", "404")
        return url

    async def main() -> list[str]:
        return list(await asyncio.gather(fetch("https://a/"), fetch("https://b/404")))

    assert asyncio.run(main()) == ["https://a/", "https://b/404"]

    calls = {
        json.loads(_attrs(s)["gen_ai.tool.call.arguments"])["url"]: s
        for s in pipeline.spans("execute_tool web.fetch")
    }
    assert set(calls) == {"https://a/", "https://b/404"}
    assert calls["https://a/"].status.status_code is StatusCode.UNSET
    assert _attrs(calls["https://b/404"])["error.type"] == "HTTPError"
    inner_parents = {span.parent.span_id for span in pipeline.spans("inside") if span.parent}
    assert inner_parents == {_ctx(span).span_id for span in calls.values()}
    assert current_tool_call() is None


def test_tool_call_arguments_are_truncated_but_hashed_in_full() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, max_argument_chars=20)
    long_a, long_b = {"text": "x" * 100 + "a"}, {"text": "x" * 100 + "b"}
    for arguments in (long_a, long_b):
        with tool_call("write", arguments=arguments):
            pass

    first, second = (_attrs(span) for span in pipeline.spans())
    assert first["gen_ai.tool.call.arguments"] == json.dumps(long_a, separators=(",", ":"))[:20]
    assert len(first["gen_ai.tool.call.arguments"]) == 20
    assert first["gen_ai.tool.call.arguments"] == second["gen_ai.tool.call.arguments"]
    assert (
        first["agentwatch.tool.call.arguments_hash"]
        != second["agentwatch.tool.call.arguments_hash"]
    )
    assert first["agentwatch.tool.call.arguments_hash"] == _args_hash(json.dumps(long_a))


def test_tool_call_records_no_argument_text_when_max_is_zero() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, max_argument_chars=0)
    with tool_call("secret.read", arguments={"key": "k"}):
        pass
    attributes = _attrs(pipeline.one("execute_tool secret.read"))
    assert "gen_ai.tool.call.arguments" not in attributes
    assert attributes["agentwatch.tool.call.arguments_hash"] == _args_hash('{"key":"k"}')


@pytest.mark.parametrize(
    "arguments",
    [
        {"b": [1, 2.5, None, True], "a": {"z": "ü", "y": "\n"}},
        '{"b": 1,   "a": 2}',  # already-serialized JSON text is recorded as is
        json.dumps(json.dumps({"q": "json in a json string"})),
        "plain text, not JSON",
        [],
    ],
)
def test_arguments_hash_is_the_backend_tool_args_hash(arguments: object) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with tool_call("t", arguments=arguments):
        pass
    attributes = _attrs(pipeline.one("execute_tool t"))
    recorded = attributes["gen_ai.tool.call.arguments"]
    assert attributes["agentwatch.tool.call.arguments_hash"] == _args_hash(recorded)


def test_tool_call_never_breaks_the_tool_when_telemetry_breaks() -> None:
    configure(tracer_provider=_BrokenProvider())
    with tool_call("t", arguments={"a": 1}) as call:
        call.mark_failed("X", "y")
    assert not call.span.is_recording()

    @tool_call("t")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3


# --- end to end -----------------------------------------------------------------------


def test_markers_and_tool_calls_reach_agentwatch_over_otlp_grpc_intact(
    agentwatch: AgentwatchThread, clock: FakeClock
) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "sdk-e2e"}))
    exporter = make_exporter(False, agentwatch.endpoints.otlp_grpc, None)
    provider.add_span_processor(PendingSpanProcessor(BatchSpanProcessor(exporter)))
    configure(tracer_provider=provider, clock=clock)
    tracer = provider.get_tracer("agent.e2e")

    with tracer.start_as_current_span("invoke_agent billing-agent", attributes=GENAI_AGENT) as run:
        trace_id = format(run.get_span_context().trace_id, "032x")
        assert heartbeat(step=1) is True
        with tool_call("crm.lookup", arguments={"customer": "c-1"}, call_id="call_e2e") as call:
            call.mark_failed("NotFound", "no such customer")
    provider.shutdown()

    def complete() -> dict[str, Any] | None:
        response = agentwatch.api(f"/api/v1/traces/{trace_id}")
        if response.status_code == 200 and len(response.json()["spans"]) >= 5:
            body: dict[str, Any] = response.json()
            return body
        return None

    spans = wait_for(complete)["spans"]
    assert sorted(span["name"] for span in spans) == [
        "agentwatch.heartbeat",
        "agentwatch.pending",
        "agentwatch.pending",
        "execute_tool crm.lookup",
        "invoke_agent billing-agent",
    ]
    by_name = {span["name"]: span for span in spans}
    root, tool = by_name["invoke_agent billing-agent"], by_name["execute_tool crm.lookup"]

    beat = by_name["agentwatch.heartbeat"]
    assert beat["parent_span_id"] == root["span_id"]
    assert beat["attributes"]["agentwatch.marker"] == "heartbeat"
    assert beat["attributes"]["agentwatch.heartbeat.seq"] == "1"
    assert beat["attributes"]["step"] == "1"
    assert beat["duration_ns"] == 0

    pending = {
        span["attributes"]["agentwatch.pending.span_id"]: span
        for span in spans
        if span["name"] == "agentwatch.pending"
    }
    assert set(pending) == {root["span_id"], tool["span_id"]}
    for span_id, marker in pending.items():
        started = root if span_id == root["span_id"] else tool
        assert marker["attributes"]["agentwatch.marker"] == "pending"
        assert marker["attributes"]["agentwatch.pending.name"] == started["name"]
        assert marker["parent_span_id"] == started["parent_span_id"]
        assert marker["start_time"] == started["start_time"]
        assert marker["duration_ns"] == 0
        assert marker["service_name"] == "sdk-e2e"
    start_ns = pending[tool["span_id"]]["attributes"]["agentwatch.pending.start_time_unix_nano"]
    assert int(start_ns) > 0
    assert pending[tool["span_id"]]["attributes"]["gen_ai.tool.name"] == "crm.lookup"

    assert tool["parent_span_id"] == root["span_id"]
    assert (tool["operation"], tool["tool_name"], tool["tool_call_id"]) == (
        "execute_tool",
        "crm.lookup",
        "call_e2e",
    )
    assert tool["attributes"]["gen_ai.tool.call.arguments"] == '{"customer":"c-1"}'
    assert tool["attributes"]["agentwatch.tool.call.arguments_hash"] == _args_hash(
        '{"customer":"c-1"}'
    )
    assert (tool["is_error"], tool["error_type"]) == (True, "NotFound")
    assert tool["agent_name"] == "billing-agent"
    assert tool["run_id"] == "conv-7"

"""agentwatch_sdk: its public surface and heartbeat(), with the real OpenTelemetry SDK."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import agentwatch_sdk
import pytest
from agentwatch_sdk import (
    configure,
    heartbeat,
)
from opentelemetry import trace

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from tests.sdk.support import (
    GENAI_AGENT,
    SDK_DIR,
    BrokenProvider,
    FakeClock,
    Pipeline,
)
from tests.sdk.support import attrs as _attrs
from tests.sdk.support import ctx as _ctx

# --- public surface -------------------------------------------------------------------


def test_public_surface_is_deliberate() -> None:
    assert sorted(agentwatch_sdk.__all__) == [
        "AgentPaused",
        "PendingSpanProcessor",
        "ToolCall",
        "ToolCallHandle",
        "check_paused",
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


def test_heartbeat_names_the_agent_and_conversation_of_the_loop_span(clock: FakeClock) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, clock=clock)
    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        assert heartbeat() is True

    marker_attrs = _attrs(pipeline.one("agentwatch.heartbeat"))
    assert marker_attrs["gen_ai.agent.name"] == "billing-agent"
    assert marker_attrs["gen_ai.conversation.id"] == "conv-7"
    assert "gen_ai.operation.name" not in marker_attrs  # a marker, not an agent span


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


def test_heartbeat_never_raises_when_telemetry_breaks() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=BrokenProvider())
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat() is False
    configure(tracer_provider=pipeline.provider, heartbeat_interval_s=0)
    with pipeline.tracer.start_as_current_span("run"):
        assert heartbeat(bad=object()) is True  # type: ignore[arg-type]  # dropped by OTel

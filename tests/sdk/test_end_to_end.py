"""agentwatch_sdk markers and tool calls through OTLP/gRPC into a real agentwatch."""

from __future__ import annotations

from typing import Any

from agentwatch_sdk import (
    PendingSpanProcessor,
    configure,
    heartbeat,
    tool_call,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from examples.send_agent_trace import make_exporter
from ingest._conventions import _args_hash
from tests.harness import AgentwatchThread, wait_for
from tests.sdk.support import (
    GENAI_AGENT,
    FakeClock,
)

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
        response = agentwatch.api(f"/api/v1/traces/{trace_id}", markers="true")
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

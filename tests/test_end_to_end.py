"""Real OpenTelemetry SDK exporters (gRPC, HTTP/protobuf) and raw OTLP JSON, end to end.

Tests that read back only the traces they sent share one agentwatch (`shared`); those
that list traces or read totals have one of their own (`agentwatch`). chDB opens one
data dir per process, so the shared one is stopped while another runs.
"""

from __future__ import annotations

import gzip
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.send_agent_trace import make_exporter, send_agent_run
from tests.harness import AgentwatchThread, make_settings, wait_for


class SharedAgentwatch:
    """One agentwatch for several tests: started when first needed, stoppable in between."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.running: AgentwatchThread | None = None

    def get(self) -> AgentwatchThread:
        if self.running is None:
            self.running = AgentwatchThread(make_settings(self.data_dir)).__enter__()
        return self.running

    def stop(self) -> None:
        if self.running is not None:
            running, self.running = self.running, None
            running.stop()


@pytest.fixture(scope="module")
def _shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedAgentwatch]:
    holder = SharedAgentwatch(tmp_path_factory.mktemp("end-to-end"))
    try:
        yield holder
    finally:
        holder.stop()


@pytest.fixture
def shared(_shared: SharedAgentwatch) -> AgentwatchThread:
    return _shared.get()


@pytest.fixture
def agentwatch(_shared: SharedAgentwatch, tmp_path: Path) -> Iterator[AgentwatchThread]:
    """A fresh agentwatch, alone in this process while the test runs."""
    _shared.stop()
    with AgentwatchThread(make_settings(tmp_path)) as running:
        yield running


def _trace(agentwatch: AgentwatchThread, trace_id: str, spans: int) -> dict[str, Any]:
    def complete() -> dict[str, Any] | None:
        response = agentwatch.api(f"/api/v1/traces/{trace_id}")
        if response.status_code == 200 and len(response.json()["spans"]) >= spans:
            body: dict[str, Any] = response.json()
            return body
        return None

    return wait_for(complete)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_exporter_agent_run_is_queryable_with_agent_fields(
    shared: AgentwatchThread, transport: str
) -> None:
    agentwatch = shared
    endpoint = (
        agentwatch.endpoints.otlp_grpc if transport == "grpc" else agentwatch.endpoints.otlp_http
    )
    trace_id = send_agent_run(make_exporter(transport == "http", endpoint, None))

    trace = _trace(agentwatch, trace_id, spans=4)

    spans = {span["name"]: span for span in trace["spans"]}
    assert len(trace["spans"]) == 4
    assert {span["agent_name"] for span in trace["spans"]} == {"billing-agent"}
    assert {span["run_id"] for span in trace["spans"]} == {"conv-42"}
    root = spans["invoke_agent billing-agent"]
    assert root["operation"] == "invoke_agent"
    assert root["parent_span_id"] == ""
    assert root["service_name"] == "billing-service"
    assert root["resource_attributes"]["agent.owner"] == "team-pay"
    chat = spans["chat gpt-4o"]
    assert (chat["operation"], chat["model"], chat["provider"]) == (
        "chat",
        "gpt-4o-2024-08-06",
        "openai",
    )
    assert (chat["input_tokens"], chat["output_tokens"]) == (812, 64)
    assert chat["parent_span_id"] == root["span_id"]
    tools = [span for span in trace["spans"] if span["operation"] == "execute_tool"]
    assert {tool["tool_name"] for tool in tools} == {"lookup_invoice"}
    failed = [tool for tool in tools if tool["is_error"]]
    assert len(failed) == 1
    assert failed[0]["error_type"] == "TimeoutError"
    assert failed[0]["status_code"] == "Error"
    assert failed[0]["status_message"] == "upstream timed out"
    assert root["start_time"].endswith("Z")
    assert all(span["duration_ns"] >= 0 for span in trace["spans"])


def _json_span(trace_id: str, span_id: str, parent: str, name: str, **attrs: Any) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}  # OTLP JSON: 64-bit ints as strings
        return {"stringValue": str(v)}

    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,  # integer enum
        "startTimeUnixNano": "1795500000000000000",
        "endTimeUnixNano": "1795500001500000000",
        "attributes": [{"key": k.replace("__", "."), "value": value(v)} for k, v in attrs.items()],
        "status": {"code": 2, "message": "boom"} if name.startswith("execute_tool") else {},
        "someFutureField": {"ignored": True},  # unknown fields are ignored
    }


def _json_request(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "raw-json"}, "spans": spans}],
            }
        ]
    }


@pytest.mark.parametrize("gzipped", [False, True])
def test_raw_otlp_json_with_hex_ids_children_first(shared: AgentwatchThread, gzipped: bool) -> None:
    agentwatch = shared
    trace_id = secrets.token_hex(16)
    root_id, tool_id = secrets.token_hex(8), secrets.token_hex(8)
    tool = _json_span(
        trace_id,
        tool_id,
        root_id,
        "execute_tool search",
        gen_ai__operation__name="execute_tool",
        gen_ai__tool__name="search",
    )
    root = _json_span(
        trace_id,
        root_id,
        "",
        "invoke_agent planner",
        gen_ai__operation__name="invoke_agent",
        gen_ai__agent__name="planner",
        gen_ai__usage__input_tokens=1200,
    )
    url = f"{agentwatch.endpoints.otlp_http}/v1/traces"
    headers = {"content-type": "application/json"}
    for spans in ([tool], [root]):  # the child arrives first, in its own request
        body = json.dumps(_json_request(spans)).encode()
        if gzipped:
            body, headers["content-encoding"] = gzip.compress(body), "gzip"
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json().get("partialSuccess", {}).get("rejectedSpans", 0) in (0, "0")

    trace = _trace(agentwatch, trace_id, spans=2)

    by_id = {span["span_id"]: span for span in trace["spans"]}
    assert by_id[tool_id]["agent_name"] == "planner"  # resolved from the later root
    assert by_id[tool_id]["tool_name"] == "search"
    assert by_id[tool_id]["is_error"] is True
    assert by_id[tool_id]["duration_ns"] == 1_500_000_000
    assert by_id[tool_id]["start_time"] == "2026-11-24T06:00:00.000000000Z"
    assert by_id[root_id]["input_tokens"] == 1200
    assert by_id[root_id]["kind"] == "Internal"


def test_unknown_trace_is_404_and_bad_id_is_400(shared: AgentwatchThread) -> None:
    agentwatch = shared
    assert agentwatch.api(f"/api/v1/traces/{secrets.token_hex(16)}").status_code == 404
    assert agentwatch.api("/api/v1/traces/not-hex").status_code == 400
    assert agentwatch.api("/api/v1/traces", since="yesterday-ish").status_code == 400


def test_trace_list_filters_by_agent_and_status(agentwatch: AgentwatchThread) -> None:
    endpoint = agentwatch.endpoints.otlp_grpc
    first = send_agent_run(make_exporter(False, endpoint, None), agent="alpha")
    second = send_agent_run(make_exporter(False, endpoint, None), agent="beta")
    _trace(agentwatch, first, spans=4)
    _trace(agentwatch, second, spans=4)

    listed = agentwatch.api("/api/v1/traces", agent="beta", since="1h").json()["traces"]

    assert [t["trace_id"] for t in listed] == [second]
    assert listed[0]["agent_names"] == ["beta"]
    assert listed[0]["span_count"] == 4
    assert listed[0]["status"] == "error"
    assert listed[0]["root_span_name"] == "invoke_agent beta"
    assert agentwatch.api("/api/v1/traces", status="ok").json()["traces"] == []


def test_health_readiness_and_metrics(agentwatch: AgentwatchThread) -> None:
    send_agent_run(make_exporter(False, agentwatch.endpoints.otlp_grpc, None))
    assert agentwatch.api("/healthz").json() == {"status": "ok"}
    assert agentwatch.api("/readyz").json() == {"status": "ready"}

    def stored() -> str | None:
        text = agentwatch.api("/metrics").text
        return text if "agentwatch_spans_stored_total 4.0" in text else None

    metrics = wait_for(stored)
    assert 'agentwatch_spans_accepted_total{transport="grpc"} 4.0' in metrics

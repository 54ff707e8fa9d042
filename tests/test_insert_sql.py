"""The ClickHouse-side translation (sql/insert_spans.sql) agrees with the Python reference.

Real chDB parses real log records; every column of every row is compared with what
`ingest.translate` produces for the same requests, processed in the same order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest import ClickHouseStore, EnclosingResolver, SpanBatch, chdb_dsn, translate
from tests import test_conventions as conventions
from tests.otlp import kv, make_request, make_span
from tests.segments import write_segment

TRACE = bytes.fromhex("5b8efff798038103d269b633813fc60c")


def _span(name: str, span_id: str, parent: str, attrs: dict[str, str]) -> Span:
    span = make_span(name, TRACE, bytes.fromhex(span_id), bytes.fromhex(parent))
    span.attributes.extend(kv(k, v) for k, v in attrs.items())
    return span


def _typed_values_span() -> Span:
    span = make_span("typed")
    nested = ArrayValue(values=[AnyValue(string_value='say "hi"/bye'), AnyValue(int_value=3)])
    span.attributes.extend(
        [
            KeyValue(key="bool", value=AnyValue(bool_value=False)),
            KeyValue(key="true_bool", value=AnyValue(bool_value=True)),
            KeyValue(key="int", value=AnyValue(int_value=-42)),
            KeyValue(key="double", value=AnyValue(double_value=2.5)),
            KeyValue(key="whole_double", value=AnyValue(double_value=3.0)),
            KeyValue(key="bytes", value=AnyValue(bytes_value=b"\x00\xffab")),
            KeyValue(key="array", value=AnyValue(array_value=nested)),
            KeyValue(
                key="map",
                value=AnyValue(
                    kvlist_value=KeyValueList(
                        values=[kv("k", "v"), KeyValue(key="n", value=AnyValue(bool_value=True))]
                    )
                ),
            ),
            KeyValue(key="unicode", value=AnyValue(string_value="héllo ✓")),
            KeyValue(key="empty", value=AnyValue()),
        ]
    )
    span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="failed"))
    span.events.add(
        time_unix_nano=span.start_time_unix_nano + 5,
        name="exception",
        attributes=[kv("exception.type", "ValueError"), kv("exception.message", "bad")],
    )
    span.links.add(trace_id=TRACE, span_id=bytes.fromhex("0102030405060708"), trace_state="x=1")
    span.kind = Span.SPAN_KIND_PRODUCER
    return span


def _corpus() -> list[ExportTraceServiceRequest]:
    """Real instrumentation attribute sets, an agent tree split children-first, odd values."""
    fixtures = [
        conventions.OTEL_OPENAI_CHAT,
        conventions.OTEL_INVOKE_AGENT,
        conventions.OTEL_EXECUTE_TOOL,
        conventions.OPENLLMETRY_CHAT,
        conventions.OPENLLMETRY_WORKFLOW,
        conventions.OPENLLMETRY_AGENT,
        conventions.OPENLLMETRY_TOOL,
        conventions.OPENINFERENCE_LLM,
        conventions.OPENINFERENCE_AGENT,
        conventions.OPENINFERENCE_TOOL,
    ]
    standalone = make_request(
        [make_span(f"fixture-{i}", attributes=dict(attrs)) for i, attrs in enumerate(fixtures)],
        service="fixtures-svc",
    )
    tool = _span(
        "execute_tool",
        "00000000000000a2",
        "00000000000000a1",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "search",
            "gen_ai.tool.call.arguments": '{"b": 2, "a": 1}',
        },
    )
    chat = _span("chat", "00000000000000a3", "00000000000000a1", {"gen_ai.operation.name": "chat"})
    root = _span(
        "invoke_agent",
        "00000000000000a1",
        "",
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": "conv-1",
        },
    )
    late_child = _span("step", "00000000000000a4", "00000000000000a3", {})
    return [
        standalone,
        make_request([tool, chat], service="agent-svc"),  # children first
        make_request([root], service="agent-svc"),
        make_request([late_child], service="agent-svc"),  # parent seen: inherits
        make_request([_typed_values_span()], service="typed-svc"),
        make_request(_cost_spans(), service="cost-svc"),
    ]


O3_CUT_NS = 1_749_513_600 * 10**9  # 2025-06-10T00:00Z: o3's price cut (ingest/prices.yaml)
O3_USAGE = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "o3",
    "gen_ai.usage.input_tokens": "1000",
    "gen_ai.usage.output_tokens": "500",
    "gen_ai.usage.cache_read.input_tokens": "200",
    "gen_ai.usage.reasoning.output_tokens": "300",
}


def _at(span: Span, start_ns: int) -> Span:
    span.start_time_unix_nano, span.end_time_unix_nano = start_ns, start_ns + 10**9
    return span


def _cost_spans() -> list[Span]:
    """LLM calls across a dated price change, each convention's counts, a reported cost,
    and spans that must stay unpriced (unknown model, marker, not an LLM call)."""
    openinference = {
        "openinference.span.kind": "LLM",
        "llm.provider": "openai",
        "llm.model_name": "o3-2025-04-16",
        "llm.token_count.prompt": "2000",
        "llm.token_count.completion": "100",
        "llm.token_count.prompt_details.cache_read": "1500",
        "llm.token_count.completion_details.reasoning": "40",
    }
    return [
        _at(make_span("o3-before", span_id=b"c" * 8, attributes=O3_USAGE), O3_CUT_NS - 1),
        _at(make_span("o3-after", span_id=b"d" * 8, attributes=O3_USAGE), O3_CUT_NS),
        _at(make_span("oi-llm", span_id=b"e" * 8, attributes=openinference), O3_CUT_NS),
        make_span(
            "reported", span_id=b"f" * 8, attributes={**O3_USAGE, "llm.cost.total": "0.0421"}
        ),
        make_span(
            "unknown", span_id=b"g" * 8, attributes={**O3_USAGE, "gen_ai.request.model": "x"}
        ),
        make_span(
            "beat", span_id=b"h" * 8, attributes={**O3_USAGE, "agentwatch.marker": "heartbeat"}
        ),
        make_span(
            "agent",
            span_id=b"i" * 8,
            attributes={**O3_USAGE, "gen_ai.operation.name": "invoke_agent"},
        ),
    ]


@pytest.fixture
def stored_rows(tmp_path: Path) -> tuple[SpanBatch, dict[str, dict[str, Any]]]:
    requests = _corpus()
    # Stored rows end up with the attribution of the complete picture (later requests
    # correct earlier spans), which is what translating everything at once gives.
    everything = ExportTraceServiceRequest(
        resource_spans=[rs for request in requests for rs in request.resource_spans]
    )
    reference = translate(everything, "acme", EnclosingResolver())
    # Ten years kept: the cost corpus has spans from 2025 (a dated price change).
    store = ClickHouseStore(chdb_dsn(tmp_path / "data"), "equivalence", retention_days=3650)
    store.open()
    try:
        store.insert_segment(write_segment(tmp_path / "1.seg", requests, tenant="acme"), "eq-1")
        rows = store.query(
            "SELECT *, toUnixTimestamp64Nano(Timestamp) AS ts_ns, "
            "arrayMap(t -> toUnixTimestamp64Nano(t), `Events.Timestamp`) AS ev_ns "
            f"FROM {store.table('otel_traces')}"
        )
    finally:
        store.close()
    return reference, {row["SpanId"]: row for row in rows}


def test_clickhouse_translation_matches_the_python_reference_column_by_column(
    stored_rows: tuple[SpanBatch, dict[str, dict[str, Any]]],
) -> None:
    reference, rows = stored_rows
    assert len(rows) == len(reference)
    mismatches = []
    for index in range(len(reference)):
        expected = reference.row(index)
        actual = rows[expected["SpanId"]]
        actual["Timestamp"], actual["Events.Timestamp"] = actual["ts_ns"], actual["ev_ns"]
        for column, value in expected.items():
            if actual[column] != value:
                mismatches.append((expected["SpanName"], column, value, actual[column]))
    assert mismatches == []


def test_spans_stored_before_their_enclosing_agent_are_corrected_when_it_arrives(
    tmp_path: Path,
) -> None:
    tool = _span("execute_tool", "00000000000000b2", "00000000000000b1", {"gen_ai.tool.name": "x"})
    chat = _span("chat", "00000000000000b3", "00000000000000b1", {})
    nested = _span("http", "00000000000000b4", "00000000000000b2", {})
    root = _span(
        "invoke_agent",
        "00000000000000b1",
        "",
        {
            "gen_ai.agent.name": "closer",
            "gen_ai.conversation.id": "conv-7",
        },
    )
    resolver = EnclosingResolver()
    store = ClickHouseStore(chdb_dsn(tmp_path / "data"), database="corrections")
    store.open()
    try:
        first = [make_request([tool, nested], service="svc"), make_request([chat], service="svc")]
        store.insert_segment(write_segment(tmp_path / "1.seg", first, resolver=resolver), "c-1")
        before = {
            r["SpanId"]: r["AgentName"]
            for r in store.query(f"SELECT SpanId, AgentName FROM {store.table('otel_traces')}")
        }
        later = [make_request([root], service="svc")]
        store.insert_segment(write_segment(tmp_path / "2.seg", later, resolver=resolver), "c-2")
        store.insert_segment(tmp_path / "2.seg", "c-2")  # a replay changes nothing
        after = store.query(
            f"SELECT SpanId, AgentName, RunId, count() AS n FROM {store.table('otel_traces')} "
            "GROUP BY SpanId, AgentName, RunId ORDER BY SpanId"
        )
    finally:
        store.close()
    assert set(before.values()) == {"svc"}  # nothing better was known yet
    assert after == [
        {"SpanId": f"00000000000000b{i}", "AgentName": "closer", "RunId": "conv-7", "n": 1}
        for i in range(1, 5)
    ]


def test_enclosing_agent_and_run_survive_children_first_arrival(
    stored_rows: tuple[SpanBatch, dict[str, dict[str, Any]]],
) -> None:
    _, rows = stored_rows
    late_child = rows["00000000000000a4"]
    assert (late_child["AgentName"], late_child["RunId"]) == ("planner", "conv-1")
    tool = rows["00000000000000a2"]
    assert tool["ToolArgsHash"] != ""
    assert tool["ToolName"] == "search"


def test_llm_spans_are_stored_with_their_cost_hand_computed(
    stored_rows: tuple[SpanBatch, dict[str, dict[str, Any]]],
) -> None:
    _, rows = stored_rows
    names = {"before": "c", "after": "d", "oi": "e", "reported": "f"}
    names |= {"unknown": "g", "beat": "h", "agent": "i"}
    cost = {}
    for name, letter in names.items():
        row = rows[(letter * 8).encode().hex()]
        cost[name] = (row["CostUsd"], row["CostPriceId"])
    # o3 per 1M tokens: $10 input, $2.50 cached, $40 output/reasoning until 2025-06-10,
    # then $2, $0.50, $8. 1000 input of which 200 cached; 500 output of which 300 reasoning.
    assert cost["before"][0] == pytest.approx((800 * 10 + 200 * 2.5 + 200 * 40 + 300 * 40) / 1e6)
    assert cost["before"][1] == "openai:o3@2025-04-16"
    assert cost["after"][0] == pytest.approx((800 * 2 + 200 * 0.5 + 200 * 8 + 300 * 8) / 1e6)
    assert cost["after"][1] == "openai:o3@2025-06-10"
    # OpenInference counts: 2000 prompt (1500 cache reads), 100 completion (40 reasoning).
    assert cost["oi"][0] == pytest.approx((500 * 2 + 1500 * 0.5 + 60 * 8 + 40 * 8) / 1e6)
    assert cost["reported"] == (0.0421, "span")
    assert cost["unknown"] == cost["beat"] == cost["agent"] == (None, "")

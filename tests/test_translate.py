"""Translation of ExportTraceServiceRequest into `otel_traces` columns (pure functions)."""

from __future__ import annotations

import json

from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ScopeSpans, Span, Status

from ingest import (
    COLUMN_NAMES,
    Correction,
    EnclosingResolver,
    SpanBatch,
    SpanLink,
    drop_invalid_spans,
    translate,
)
from tests.otlp import kv, make_request, make_span

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
ROOT = bytes.fromhex("b7ad6b7169203331")
CHILD = bytes.fromhex("00f067aa0ba902b7")
GRANDCHILD = bytes.fromhex("1111111111111111")


def test_ids_kind_status_times_and_scope_are_flattened() -> None:
    span = make_span("step", TRACE, CHILD, parent=ROOT)
    span.kind = Span.SPAN_KIND_CLIENT
    span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="bad"))
    span.trace_state = "vendor=1"
    request = make_request([span], service="checkout")
    request.resource_spans[0].scope_spans[0].scope.CopyFrom(
        InstrumentationScope(name="openai.agents", version="0.4.2")
    )

    row = translate(request, "acme").row(0)

    assert row["TraceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert row["SpanId"] == "00f067aa0ba902b7"
    assert row["ParentSpanId"] == "b7ad6b7169203331"
    assert (row["SpanKind"], row["StatusCode"], row["StatusMessage"]) == ("Client", "Error", "bad")
    assert row["Timestamp"] == span.start_time_unix_nano
    assert row["Duration"] == 250_000_000
    assert (row["ScopeName"], row["ScopeVersion"]) == ("openai.agents", "0.4.2")
    assert row["ServiceName"] == "checkout"
    assert row["TraceState"] == "vendor=1"
    assert row["TenantId"] == "acme"
    assert row["IsError"] == 1


def test_attribute_values_are_strings_like_the_collector_writes_them() -> None:
    span = make_span()
    span.attributes.extend(
        [
            KeyValue(key="b", value=AnyValue(bool_value=True)),
            KeyValue(key="i", value=AnyValue(int_value=-7)),
            KeyValue(key="d", value=AnyValue(double_value=0.25)),
            KeyValue(
                key="arr",
                value=AnyValue(
                    array_value=ArrayValue(
                        values=[AnyValue(string_value="x"), AnyValue(int_value=2)]
                    )
                ),
            ),
            KeyValue(
                key="map",
                value=AnyValue(kvlist_value=KeyValueList(values=[kv("k", "v")])),
            ),
            KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")),
            KeyValue(key="empty", value=AnyValue()),
        ]
    )

    attrs = translate(make_request([span]), "t").SpanAttributes[0]

    assert attrs["b"] == "true"
    assert attrs["i"] == "-7"
    assert attrs["d"] == "0.25"
    assert json.loads(attrs["arr"]) == ["x", 2]
    assert json.loads(attrs["map"]) == {"k": "v"}
    assert attrs["raw"] == "AAE="
    assert attrs["empty"] == ""


def test_events_and_links_fill_the_nested_columns() -> None:
    span = make_span()
    span.events.add(time_unix_nano=5, name="exception", attributes=[kv("exception.type", "E")])
    span.events.add(time_unix_nano=6, name="gen_ai.evaluation.result")
    span.links.add(trace_id=TRACE, span_id=ROOT, trace_state="s", attributes=[kv("a", 1)])
    span.status.code = Status.STATUS_CODE_ERROR

    row = translate(make_request([span]), "t").row(0)

    assert row["Events.Timestamp"] == [5, 6]
    assert row["Events.Name"] == ["exception", "gen_ai.evaluation.result"]
    assert row["Events.Attributes"] == [{"exception.type": "E"}, {}]
    assert row["Links.TraceId"] == [TRACE.hex()]
    assert row["Links.SpanId"] == [ROOT.hex()]
    assert row["Links.TraceState"] == ["s"]
    assert row["Links.Attributes"] == [{"a": "1"}]
    assert row["ErrorType"] == "E"  # from the exception event of an error span


def _agent_tree() -> tuple[Span, Span, Span]:
    root = make_span(
        "invoke_agent",
        TRACE,
        ROOT,
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "planner",
            "gen_ai.conversation.id": "conv-9",
        },
    )
    child = make_span(
        "chat", TRACE, CHILD, parent=ROOT, attributes={"gen_ai.operation.name": "chat"}
    )
    grandchild = make_span(
        "execute_tool",
        TRACE,
        GRANDCHILD,
        parent=CHILD,
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
    )
    return root, child, grandchild


def test_agent_and_run_come_from_the_enclosing_agent_span_in_any_order() -> None:
    root, child, grandchild = _agent_tree()

    batch = translate(make_request([grandchild, child, root], service="svc"), "t")

    assert batch.AgentName == ["planner", "planner", "planner"]
    assert batch.RunId == ["conv-9", "conv-9", "conv-9"]
    assert batch.ToolName[0] == "search"


def test_parent_first_context_flows_to_later_requests() -> None:
    root, child, grandchild = _agent_tree()
    resolver = EnclosingResolver()

    translate(make_request([root]), "t", resolver)
    translate(make_request([child]), "t", resolver)
    later = translate(make_request([grandchild]), "t", resolver)

    assert (later.AgentName, later.RunId) == (["planner"], ["conv-9"])


def _link(span: Span) -> SpanLink:
    attrs = {kv.key: kv.value.string_value for kv in span.attributes}
    return SpanLink(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        attrs.get("gen_ai.agent.name", ""),
        attrs.get("gen_ai.conversation.id", ""),
    )


def test_descendants_that_arrived_first_are_corrected_when_the_ancestor_arrives() -> None:
    root, child, grandchild = _agent_tree()
    resolver = EnclosingResolver()

    assert resolver.add([_link(grandchild)]) == ([("", "")], [])
    assert resolver.add([_link(child)]) == ([("", "")], [])
    attributions, corrections = resolver.add([_link(root)])

    assert attributions == [("planner", "conv-9")]
    assert sorted(corrections) == sorted(
        [
            Correction(TRACE, CHILD, "planner", "conv-9"),
            Correction(TRACE, GRANDCHILD, "planner", "conv-9"),
        ]
    )


def test_a_nested_agent_keeps_its_own_name_and_passes_it_down() -> None:
    outer = make_span("outer", TRACE, ROOT, attributes={"gen_ai.agent.name": "outer"})
    inner = make_span("inner", TRACE, CHILD, ROOT, attributes={"gen_ai.agent.name": "inner"})
    tool = make_span("tool", TRACE, GRANDCHILD, CHILD)
    resolver = EnclosingResolver()

    attributions, corrections = resolver.add([_link(tool), _link(inner), _link(outer)])

    assert [agent for agent, _ in attributions] == ["inner", "inner", "outer"]
    assert corrections == []  # all in one request: nothing stored needs fixing


def test_a_span_sent_twice_in_one_request_is_attributed_as_its_last_copy_says() -> None:
    root = make_span("root", TRACE, ROOT, attributes={"gen_ai.agent.name": "planner"})
    tool = make_span("tool", TRACE, CHILD, ROOT)
    renamed = make_span("root", TRACE, ROOT, attributes={"gen_ai.agent.name": "critic"})
    resolver = EnclosingResolver()

    attributions, _ = resolver.add([_link(tool), _link(root), _link(renamed)])

    assert [agent for agent, _ in attributions] == ["critic", "critic", "critic"]


def test_resolver_forgets_the_oldest_spans_beyond_its_capacity() -> None:
    resolver = EnclosingResolver(capacity=2)
    root, child, _ = _agent_tree()

    resolver.add([_link(root)])
    resolver.add([_link(make_span("a")), _link(make_span("b"))])  # pushes the root out
    attributions, _ = resolver.add([_link(child)])

    assert attributions == [("", "")]


def test_without_any_agent_the_service_name_and_trace_id_are_used() -> None:
    span = make_span("plain", TRACE, CHILD)

    batch = translate(make_request([span], service="billing-service"), "t")

    assert batch.AgentName == ["billing-service"]
    assert batch.RunId == [TRACE.hex()]


def test_invalid_spans_are_dropped_and_counted_the_rest_kept() -> None:
    request = make_request(
        [
            make_span("ok"),
            make_span("zero-trace", trace_id=bytes(16)),
            make_span("short-span", span_id=b"\x01"),
            make_span("bad-parent", parent=b"\x01\x02"),
            make_span("ok-2"),
        ]
    )
    request.resource_spans[0].scope_spans.append(ScopeSpans(spans=[make_span("other-scope")]))

    rejected, message = drop_invalid_spans(request)

    assert rejected == 3
    assert "trace_id" in message
    assert translate(request, "t").SpanName == ["ok", "ok-2", "other-scope"]


def test_valid_request_is_untouched_by_validation() -> None:
    request = make_request([make_span(), make_span()])
    before = request.SerializeToString()

    assert drop_invalid_spans(request) == (0, "")
    assert request.SerializeToString() == before


def test_every_column_has_one_value_per_span() -> None:
    batch = translate(make_request([make_span() for _ in range(3)]), "t")

    columns = batch.columns()

    assert len(columns) == len(COLUMN_NAMES)
    assert all(len(column) == 3 for column in columns)
    merged = SpanBatch()
    merged.extend(batch)
    merged.extend(batch)
    assert len(merged) == 6

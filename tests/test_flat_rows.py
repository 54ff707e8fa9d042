"""The C flat-rows walker (_flatrows.c) writes exactly what the Python reference writes.

Both turn write-ahead-log segments, made by the real record encoder, into RowBinary
rows; the comparison is byte for byte. `tests/test_insert_sql.py` then holds the rows,
stored by real chDB, to the Python translation column by column.
"""

from __future__ import annotations

import math
import random
import struct

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from ingest import EnclosingResolver
from ingest._flat_rows import flat_rows, flat_rows_python
from ingest._resolve import build_record
from ingest._wal_record import ResolvedSpan, encode_envelope, encode_logs_record, frame
from tests.otlp import kv, make_request, make_span

_flatrows = pytest.importorskip("ingest._flatrows", reason="the C extension is not built")

TEXTS = ["", "plain", 'say "hi"/bye', "tab\tnew\nline\r", "\x00\x01\x1f\x7f", "héllo ✓ 🚀", "\\"]
DOUBLES = [0.0, -0.0, 2.5, 3.0, -7.0, 1e15, 1e15 - 1, 1e16, 1e-7, 0.1, math.pi, -1e300]
SPECIAL_DOUBLES = [math.inf, -math.inf, math.nan]


def random_value(rng: random.Random, depth: int = 0) -> AnyValue:
    kind = rng.choice(
        ["string", "bool", "int", "double", "bytes", "none"]
        + (["array", "kvlist"] if depth < 3 else [])
    )
    if kind == "string":
        return AnyValue(string_value=rng.choice(TEXTS))
    if kind == "bool":
        return AnyValue(bool_value=rng.random() < 0.5)
    if kind == "int":
        return AnyValue(int_value=rng.choice([0, -42, 7, 2**63 - 1, -(2**63)]))
    if kind == "double":
        return AnyValue(double_value=rng.choice(DOUBLES + SPECIAL_DOUBLES))
    if kind == "bytes":
        return AnyValue(bytes_value=bytes(rng.randrange(256) for _ in range(rng.randrange(5))))
    if kind == "array":
        values = [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
        return AnyValue(array_value=ArrayValue(values=values))
    if kind == "kvlist":
        # Few distinct keys, so repeated keys (dict semantics in JSON) come up often.
        pairs = [
            KeyValue(key=rng.choice("abc"), value=random_value(rng, depth + 1))
            for _ in range(rng.randrange(5))
        ]
        return AnyValue(kvlist_value=KeyValueList(values=pairs))
    return AnyValue()


def random_attributes(rng: random.Random, count: int) -> list[KeyValue]:
    keys = ["gen_ai.tool.name", "service.name", "k", "exception.type", "x.y"]
    return [KeyValue(key=rng.choice(keys), value=random_value(rng)) for _ in range(count)]


def random_span(rng: random.Random, index: int) -> Span:
    span = make_span(f"span-{index}", span_id=rng.randbytes(8), parent=rng.randbytes(8))
    span.attributes.extend(random_attributes(rng, rng.randrange(8)))
    span.kind = rng.choice([0, 1, 2, 3, 4, 5, 9])  # type: ignore[assignment]  # 9: unnamed
    span.trace_state = rng.choice(["", "a=1"])
    if rng.random() < 0.3:
        span.end_time_unix_nano = span.start_time_unix_nano - 5  # ends before it starts
    code = rng.choice([0, 1, 2, 7])  # 7: not a status OTLP names
    span.status.CopyFrom(Status(code=code, message=rng.choice(TEXTS)))  # type: ignore[arg-type]
    for event in range(rng.randrange(4)):
        span.events.add(
            time_unix_nano=span.start_time_unix_nano + event,
            name=rng.choice(["exception", "log", "gen_ai.evaluation.result"]),
            attributes=random_attributes(rng, rng.randrange(3)),
        )
    for _ in range(rng.randrange(3)):
        span.links.add(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            trace_state=rng.choice(TEXTS),
            attributes=random_attributes(rng, rng.randrange(3)),
        )
    return span


def segment_of(requests: list[ExportTraceServiceRequest], tenant: str = "acme") -> bytes:
    resolver = EnclosingResolver()
    return b"".join(build_record(tenant, request, resolver) for request in requests)


@pytest.mark.parametrize("seed", range(20))
def test_random_spans_come_out_byte_for_byte_as_the_reference_writes_them(seed: int) -> None:
    rng = random.Random(seed)
    requests = []
    for request in range(3):
        spans = [random_span(rng, index) for index in range(rng.randrange(1, 6))]
        built = make_request(spans, service=rng.choice(TEXTS))
        built.resource_spans[0].resource.attributes.extend(random_attributes(rng, 3))
        built.resource_spans[0].scope_spans[0].scope.version = f"v{request}"
        requests.append(built)
    segment = segment_of(requests)

    rows = _flatrows.flat_rows(segment)

    assert rows == flat_rows_python(segment)
    assert rows.count(b"span-") == sum(
        len(r.resource_spans[0].scope_spans[0].spans) for r in requests
    )


def test_an_agent_tree_carries_the_resolved_agent_run_and_tool_arguments() -> None:
    root = make_span(
        "invoke_agent",
        span_id=b"\x01" * 8,
        attributes={"gen_ai.agent.name": "planner", "gen_ai.conversation.id": "c-1"},
    )
    tool = make_span(
        "execute_tool",
        span_id=b"\x02" * 8,
        parent=b"\x01" * 8,
        attributes={"gen_ai.tool.name": "search", "gen_ai.tool.call.arguments": '{"q": 1}'},
    )
    segment = segment_of([make_request([tool, root], service="agents")])

    rows = _flatrows.flat_rows(segment)

    assert rows == flat_rows_python(segment)
    assert b"planner" in rows.split(b"execute_tool", 1)[1]  # inherited, from the envelope


def test_the_last_resolved_entry_for_a_span_wins_as_in_the_reference() -> None:
    span = make_span("s", span_id=b"\x05" * 8)
    body = make_request([span]).SerializeToString()
    envelope = encode_envelope(
        "t",
        [
            ResolvedSpan(b"\x05" * 8, "first-agent", "run-1", ""),
            ResolvedSpan(b"\x09" * 8, "other", "run-9", ""),
            ResolvedSpan(b"\x05" * 8, "last-agent", "run-2", "hash"),
        ],
    )
    segment = frame(body + envelope)

    rows = _flatrows.flat_rows(segment)

    assert rows == flat_rows_python(segment)
    assert b"last-agent" in rows
    assert b"first-agent" not in rows


def test_merged_messages_and_logs_records_read_as_protobuf_reads_them() -> None:
    """Fields of a message sent twice merge (protobuf's rule); logs records hold no spans."""
    first = ResourceSpans()
    first.resource.attributes.extend([kv("service.name", "first"), kv("a", "1")])
    second = make_request([make_span("merged")], service="second").resource_spans[0]
    merged_resource = first.SerializeToString() + second.SerializeToString()
    request = b"\x0a" + bytes([len(merged_resource)]) + merged_resource
    spans_record = frame(request + encode_envelope("t", []))
    logs_record = frame(encode_logs_record("t", ExportLogsServiceRequest().SerializeToString(), 1))
    segment = logs_record + spans_record + logs_record

    rows = _flatrows.flat_rows(segment)

    assert rows == flat_rows_python(segment)
    assert rows.count(b"merged") == 1
    assert b"first" in rows
    assert b"second" in rows


def test_what_the_walker_refuses_is_left_to_the_reference() -> None:
    deep = AnyValue(string_value="bottom")
    for _ in range(40):  # deeper than the walker's limit
        deep = AnyValue(array_value=ArrayValue(values=[deep]))
    span = make_span("deep")
    span.attributes.append(KeyValue(key="deep", value=deep))
    segment = segment_of([make_request([span])])

    with pytest.raises(ValueError):
        _flatrows.flat_rows(segment)
    assert flat_rows(segment) == flat_rows_python(segment)
    assert b"[" * 40 + b'"bottom"' in flat_rows(segment)


def test_a_truncated_segment_is_refused_not_read_past_its_end() -> None:
    segment = segment_of([make_request([make_span("whole")])])

    for cut in (1, len(segment) // 2, len(segment) - 1):
        with pytest.raises(ValueError):
            _flatrows.flat_rows(segment[:cut])


def test_doubles_read_as_python_writes_them_shortest_round_trip() -> None:
    """The walker formats doubles itself (it runs without the GIL): every kind of double,
    at top level and inside arrays, comes out as the reference's text."""
    rng = random.Random(7)
    doubles = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    doubles += [rng.uniform(-1e6, 1e6) for _ in range(1000)]
    doubles += [round(rng.uniform(-100, 100), rng.randrange(6)) for _ in range(1000)]
    doubles += [float(f"1e{e}") for e in range(-330, 310)] + [5e-324, 2.2250738585072014e-308, 1e22]
    doubles += [1e16 - 2, 123456789012345680.0, 0.30000000000000004, 9.999999999999999e15]
    span = make_span("doubles")
    span.attributes.extend(KeyValue(key="d", value=AnyValue(double_value=d)) for d in doubles)
    listed = ArrayValue(values=[AnyValue(double_value=d) for d in doubles])
    span.attributes.append(KeyValue(key="listed", value=AnyValue(array_value=listed)))
    segment = segment_of([make_request([span])])

    rows = _flatrows.flat_rows(segment)

    assert rows == flat_rows_python(segment)
    assert repr(0.30000000000000004).encode() in rows

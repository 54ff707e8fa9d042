"""The C wire walker agrees with the Python context pass, and survives hostile bytes."""

from __future__ import annotations

import random

import pytest
from google.protobuf.message import DecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from ingest import _resolve
from tests.otlp import kv, make_request, make_span

wirescan = pytest.importorskip("ingest._wirescan", reason="the C walker was not built")

KEYS = _resolve._CONTEXT_KEY_TUPLE


def _corpus() -> list[bytes]:
    agent = make_span(
        "invoke_agent",
        attributes={"gen_ai.agent.name": "planner", "gen_ai.conversation.id": "c-1", "x": "y"},
    )
    tool = make_span(
        "execute_tool",
        parent=agent.span_id,
        attributes={"gen_ai.tool.name": "search", "gen_ai.tool.call.arguments": '{"q": 1}'},
    )
    typed = make_span("typed")
    typed.attributes.extend(
        [
            KeyValue(key="session.id", value=AnyValue(int_value=42)),
            KeyValue(key="agent.name", value=AnyValue()),
            KeyValue(key="", value=AnyValue(string_value="no key")),
            KeyValue(key="k" * 300, value=AnyValue(string_value="long key")),
        ]
    )
    typed.events.add(name="e", attributes=[kv("gen_ai.agent.name", "inside an event")])
    bare = make_span("bare", trace_id=b"", span_id=b"")
    return [
        b"",
        make_request([agent, tool]).SerializeToString(),
        make_request([typed, bare], service="s").SerializeToString(),
        make_request([make_span() for _ in range(50)]).SerializeToString(),
    ]


@pytest.mark.parametrize("body", _corpus())
def test_c_walker_and_python_pass_find_the_same_spans_and_context(body: bytes) -> None:
    assert wirescan.scan(body, KEYS) == _resolve.scan_spans_python(body)


def test_context_attributes_of_events_are_not_taken_for_the_span() -> None:
    body = _corpus()[2]

    scanned = wirescan.scan(body, KEYS)

    hits = [KeyValue.FromString(hit).key for hit in scanned[0][3]]
    assert hits == ["session.id", "agent.name"]


def test_hostile_bytes_never_crash_the_walker() -> None:
    rng = random.Random(7)
    valid = _corpus()[1]
    cases = [valid[:cut] for cut in range(len(valid))]
    cases += [bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))) for _ in range(500)]
    for _ in range(500):
        mutated = bytearray(valid)
        mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        cases.append(bytes(mutated))
    agreed = 0
    for body in cases:
        try:
            scanned = wirescan.scan(body, KEYS)
        except ValueError:
            continue  # refused: the caller falls back to the Python pass
        try:
            reference = _resolve.scan_spans_python(body)
        except DecodeError:
            continue  # not a valid message at all (never reaches the walker in serve)
        assert scanned == reference
        agreed += 1
    assert agreed > 0


def test_the_python_pass_is_used_when_the_walker_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    body = _corpus()[1]

    class Refusing:
        @staticmethod
        def scan(body: bytes, keys: tuple[bytes, ...]) -> list[object]:
            raise ValueError("refused")

    monkeypatch.setattr(_resolve, "_wirescan", Refusing)

    assert _resolve.scan_spans(body) == _resolve.scan_spans_python(body)


def _typed_values() -> list[AnyValue]:
    from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

    return [
        AnyValue(string_value=""),
        AnyValue(string_value="plain"),
        AnyValue(string_value="ünïcode ✓ " * 40),
        AnyValue(int_value=0),
        AnyValue(int_value=-7),
        AnyValue(int_value=2**63 - 1),
        AnyValue(int_value=-(2**63)),
        AnyValue(bool_value=True),
        AnyValue(bool_value=False),
        AnyValue(double_value=1.5),
        AnyValue(double_value=3.0),
        AnyValue(bytes_value=b"\x00\xff"),
        AnyValue(array_value=ArrayValue(values=[AnyValue(int_value=1)])),
        AnyValue(kvlist_value=KeyValueList(values=[kv("a", "b")])),
        AnyValue(),
    ]


@pytest.mark.parametrize("value", _typed_values())
def test_decoded_hits_read_like_the_protobuf_runtime(value: AnyValue) -> None:
    from ingest._resolve import decoded_attributes
    from ingest._translate import any_value_to_str

    span = make_span("typed")
    span.attributes.append(KeyValue(key="gen_ai.tool.name", value=value))
    body = make_request([span]).SerializeToString()

    ((_, _, _, hits),) = wirescan.scan(body, (b"gen_ai.tool.name",), True)

    assert decoded_attributes(hits) == {"gen_ai.tool.name": any_value_to_str(value)}


def test_hits_that_all_decode_come_as_a_dict_and_mixed_ones_keep_the_last_value() -> None:
    from ingest._resolve import decoded_attributes, scan_spans_python
    from ingest._translate import any_value_to_str

    keys = (b"a", b"b", b"c")
    plain = make_span("plain", attributes={"a": "1", "b": "2"})
    mixed = make_span("mixed")
    mixed.attributes.extend(
        [
            KeyValue(key="a", value=AnyValue(string_value="first")),
            KeyValue(key="b", value=AnyValue(double_value=2.5)),  # stays bytes
            KeyValue(key="a", value=AnyValue(string_value="last")),
            KeyValue(key="c", value=AnyValue(int_value=3)),
        ]
    )
    body = make_request([plain, mixed]).SerializeToString()

    (_, _, _, plain_hits), (_, _, _, mixed_hits) = wirescan.scan(body, keys, True)
    python = [
        dict(map(_resolve._attribute, hits))
        for *_, hits in scan_spans_python(body, frozenset(keys))
    ]

    assert plain_hits == {"a": "1", "b": "2"}
    assert isinstance(mixed_hits, list)
    assert decoded_attributes(mixed_hits) == python[1]
    assert python[1] == {"a": "last", "b": any_value_to_str(AnyValue(double_value=2.5)), "c": "3"}


def test_invalid_utf8_is_left_to_python() -> None:
    from ingest._resolve import decoded_attributes

    good = KeyValue(key="gen_ai.tool.name", value=AnyValue(string_value="x"))
    broken = good.SerializeToString()[:-1] + b"\xff"
    # Protobuf will not encode invalid UTF-8, so the request is put together by hand:
    # span (+ the raw attribute, field 9) in scope_spans (field 2) in resource_spans (1).
    request = make_request([make_span("broken")])
    span = request.resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += b"\x4a" + bytes([len(broken)]) + broken
    scope = b"\x12" + bytes([len(span)]) + span
    spliced = b"\x0a" + bytes([len(scope) + 2]) + b"\x12" + bytes([len(scope)]) + scope

    ((_, _, _, hits),) = wirescan.scan(spliced, (b"gen_ai.tool.name",), True)

    assert hits == [broken]
    assert decoded_attributes(hits) == {"gen_ai.tool.name": "\ufffd"}


def test_hostile_records_never_crash_the_one_pass_reader() -> None:
    from ingest import record_agent_spans
    from ingest._agent_spans import _WANTED_KEY_TUPLE, record_agent_spans_python

    rng = random.Random(11)
    valid = _corpus()[1] + b"\xc2\x3e\x04acme"  # a request plus an envelope tenant
    cases = [valid[:cut] for cut in range(len(valid))]
    for _ in range(1000):
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
        cases.append(bytes(mutated))
    agreed = 0
    for record in cases:
        try:
            wirescan.scan_record(record, _WANTED_KEY_TUPLE)
        except ValueError:
            continue  # refused: the caller falls back to the Python reader
        try:
            reference = record_agent_spans_python(record)
        except (DecodeError, ValueError, StopIteration):
            continue  # not a valid record at all (never reaches the reader in serve)
        assert record_agent_spans(record) == reference
        agreed += 1
    assert agreed > 0


def _repetitive_request(spans: int, seed: int) -> bytes:
    """Spans whose values repeat, collide in the walker's text cache and straddle its
    size limit; trace ids that come in runs, alternate, and are sometimes empty."""
    rng = random.Random(seed)
    values = [
        *(f"tool-{n}" for n in range(1500)),  # more distinct values than cache slots
        *("x" * size for size in (0, 1, 63, 64, 65, 200)),
        "ünïcode ✓",
    ]
    traces = [_random_bytes(rng, 16) for _ in range(5)] + [b""]
    out = []
    for _ in range(spans):
        span = make_span(
            "step",
            trace_id=rng.choice(traces),
            attributes={"gen_ai.tool.name": rng.choice(values), "session.id": rng.choice(values)},
        )
        out.append(span)
    return make_request(out).SerializeToString()


def _random_bytes(rng: random.Random, size: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(size))


@pytest.mark.parametrize("seed", range(3))
def test_shared_texts_read_like_the_python_pass(seed: int) -> None:
    from ingest._agent_spans import record_agent_spans, record_agent_spans_python
    from ingest._resolve import decoded_attributes

    body = _repetitive_request(3000, seed)
    keys = (b"gen_ai.tool.name", b"session.id")

    scanned = wirescan.scan(body, keys, True)
    python = _resolve.scan_spans_python(body, frozenset(keys))
    assert [decoded_attributes(hits) for *_, hits in scanned] == [
        dict(map(_resolve._attribute, hits)) for *_, hits in python
    ]
    record = body + b"\xc2\x3e\x04acme"  # plus an envelope tenant
    assert record_agent_spans(record) == record_agent_spans_python(record)


def test_a_repeated_key_or_short_value_is_one_object() -> None:
    """One str per wanted key and per distinct short value in a call: the detectors
    hash each once, instead of a new string per span."""
    trace = b"\x01" * 16
    spans = [
        make_span("step", trace, attributes={"gen_ai.tool.name": tool, "session.id": "conv-1"})
        for tool in ["search", "fetch", "write"] * 30
    ]
    body = make_request(spans).SerializeToString()

    scanned = wirescan.scan_record(body, (b"gen_ai.tool.name", b"session.id"))[2]

    assert len({id(key) for *_, hits, _ in scanned for key in hits}) == 2
    assert len({id(hits["gen_ai.tool.name"]) for *_, hits, _ in scanned}) == 3
    assert len({id(hits["session.id"]) for *_, hits, _ in scanned}) == 1
    assert len({id(trace_hex) for trace_hex, *_ in scanned}) == 1


def test_a_wanted_key_that_is_not_utf8_is_left_to_python() -> None:
    from ingest._resolve import decoded_attributes

    raw_key = b"\xffkey"
    attribute = b"\x0a" + bytes([len(raw_key)]) + raw_key + b"\x12\x03\x0a\x01v"
    request = make_request([make_span("odd key")])
    span = request.resource_spans[0].scope_spans[0].spans[0].SerializeToString()
    span += b"\x4a" + bytes([len(attribute)]) + attribute
    scope = b"\x12" + bytes([len(span)]) + span
    spliced = b"\x0a" + bytes([len(scope) + 2]) + b"\x12" + bytes([len(scope)]) + scope

    ((_, _, _, hits),) = wirescan.scan(spliced, (raw_key,), True)

    assert hits == [attribute]
    assert decoded_attributes(hits) == {"\ufffdkey": "v"}

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

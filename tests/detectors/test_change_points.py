"""change_point: a new model, a new tool, a tool's new argument schema — not rare ones."""

from __future__ import annotations

import json
from typing import Any

from detectors import DetectorConfig, DetectorEngine, Finding
from ingest import AgentSpan
from tests.detectors.spans import at, llm_call, tool_call


def new_engine(**changes: Any) -> DetectorEngine:
    return DetectorEngine(DetectorConfig.from_dict({"change_point": changes}))


def changes(engine: DetectorEngine) -> list[Finding]:
    return [f for f in engine.take_findings() if f.kind == "change_point"]


def llm(n: int, model: str, provider: str = "openai") -> AgentSpan:
    return llm_call(f"{n:016x}", n, n + 0.5, model=model, provider=provider, trace_id=f"{n:032x}")


def call(
    n: int, tool: str = "search", arguments: str | None = '{"q": "x"}', run: str = ""
) -> AgentSpan:
    """Tool call number `n`, in a run of its own unless `run` is given."""
    attributes = {"gen_ai.tool.call.arguments": arguments} if arguments is not None else {}
    return tool_call(
        f"{n:016x}", n, n + 0.5, tool=tool, attributes=attributes, run_id=run or f"run-{n}"
    )


def feed(engine: DetectorEngine, spans: list[AgentSpan]) -> list[Finding]:
    seen: list[Finding] = []
    for span in spans:
        engine.consume([span])
        seen += changes(engine)
    return seen


def test_a_model_swap_is_a_change_point() -> None:
    engine = new_engine()
    assert feed(engine, [llm(n, "gpt-4o") for n in range(100)]) == []

    found = feed(engine, [llm(n, "gpt-4.1-mini") for n in range(100, 120)])

    assert len(found) == 1
    point = found[0]
    assert (point.severity, point.state, point.agent_name) == ("info", "open", "planner")
    assert point.evidence["change"] == "model"
    assert (point.evidence["from"], point.evidence["to"]) == (
        "openai/gpt-4o",
        "openai/gpt-4.1-mini",
    )
    assert "gpt-4o to openai/gpt-4.1-mini" in point.summary
    assert point.opened_at_ns == at(104.5)  # confirmed at the fifth call


def test_a_rarely_used_fallback_model_is_not_a_change() -> None:
    engine = new_engine()
    spans = [llm(n, "claude-haiku" if n % 50 == 49 else "gpt-4o") for n in range(1000)]
    assert feed(engine, spans) == []


def test_a_new_tool_is_a_change_point_and_a_rare_one_is_not() -> None:
    engine = new_engine()
    rare = [call(n, "refunds.create" if n % 40 == 39 else "search") for n in range(400)]
    assert feed(engine, rare) == []

    found = feed(engine, [call(n, "crm.lookup" if n % 2 else "search") for n in range(400, 420)])

    assert [f.evidence["change"] for f in found] == ["tool_added"]
    assert found[0].tool_name == "crm.lookup"
    assert "refunds.create" in found[0].evidence["tools_before"]


def feed_and_tick(engine: DetectorEngine, spans: list[AgentSpan]) -> list[Finding]:
    """Feed one span at a time and tick after each: removals are noticed on ticks."""
    seen: list[Finding] = []
    for span in spans:
        engine.consume([span])
        engine.tick(span.end_ns)
        seen += changes(engine)
    return seen


def test_a_tool_that_stops_being_called_is_a_change_point_and_a_rare_one_is_not() -> None:
    engine = new_engine()
    mixed = [
        call(n, "crm.lookup" if n % 3 == 0 else "refunds.create" if n % 40 == 39 else "search")
        for n in range(400)
    ]
    assert feed_and_tick(engine, mixed) == []

    found = feed_and_tick(engine, [call(n, "search") for n in range(400, 460)])

    assert [(f.evidence["change"], f.tool_name) for f in found] == [("tool_removed", "crm.lookup")]
    removed = found[0]
    assert removed.evidence["last_called_at"] == "2023-11-14T22:19:59.500Z"  # call 399
    # In 134 of its 400 runs: flagged at the first n with 134 * (1 - 134/400) ^ n < 0.001.
    expected = next(n for n in range(20, 100) if 134 * (1 - 134 / 400) ** n < 0.001)
    assert removed.evidence["runs_since"] == expected
    assert "stopped calling crm.lookup" in removed.summary


def test_one_run_looping_on_one_tool_does_not_make_the_others_look_removed() -> None:
    engine = new_engine()
    feed_and_tick(engine, [call(n, "crm.lookup" if n % 3 == 0 else "search") for n in range(300)])

    loop = [call(n, "search", run="run-looping") for n in range(300, 500)]

    assert feed_and_tick(engine, loop) == []


def test_a_removed_tool_that_returns_and_goes_again_is_reported_again() -> None:
    engine = new_engine()
    feed_and_tick(engine, [call(n, "crm.lookup" if n % 2 else "search") for n in range(200)])
    first = feed_and_tick(engine, [call(n, "search") for n in range(200, 240)])
    back = feed_and_tick(
        engine, [call(n, "crm.lookup" if n % 2 else "search") for n in range(240, 300)]
    )
    again = feed_and_tick(engine, [call(n, "search") for n in range(300, 340)])

    assert [f.evidence["change"] for f in first if f.state == "open"] == ["tool_removed"]
    assert [f for f in back if f.state == "open"] == []
    assert [f.evidence["change"] for f in again if f.state == "open"] == ["tool_removed"]


def test_a_tool_schema_change_is_a_change_point_and_optional_keys_are_not() -> None:
    engine = new_engine()
    optional = [
        call(n, arguments='{"q": "x", "limit": 5}' if n % 30 == 0 else '{"q": "x"}')
        for n in range(300)
    ]
    assert feed(engine, optional) == []

    found = feed(engine, [call(n, arguments='{"query": "x"}') for n in range(300, 320)])

    assert [f.evidence["change"] for f in found] == ["tool_schema"]
    assert (found[0].evidence["from_keys"], found[0].evidence["to_keys"]) == (["q"], ["query"])


def test_arguments_that_are_not_a_json_object_are_ignored() -> None:
    engine = new_engine()
    spans = [call(n, arguments='{"q": "x"}') for n in range(100)]
    odd = ["[1]", "{cut", "x"] * 10  # an array, JSON cut short, plain text
    spans += [call(100 + n, arguments=text) for n, text in enumerate(odd)]
    assert feed(engine, spans) == []


def test_a_change_point_settles_after_an_hour_and_is_reported_once() -> None:
    engine = new_engine(settle="1h")
    feed(engine, [llm(n, "gpt-4o") for n in range(100)])
    opened = feed(engine, [llm(n, "gpt-4.1") for n in range(100, 200)])
    assert len(opened) == 1

    engine.tick(at(104.5 + 3599))
    assert changes(engine) == []
    engine.tick(at(104.5 + 3600))
    (settled,) = changes(engine)
    assert settled.id == opened[0].id
    assert settled.evidence["resolution"] == "settled"


def test_state_survives_a_snapshot_round_trip() -> None:
    engine = new_engine()
    feed(engine, [llm(n, "gpt-4o") for n in range(100)])
    restored = new_engine()
    restored.restore(json.loads(json.dumps(engine.snapshot())))
    found = feed(restored, [llm(n, "gpt-4.1") for n in range(100, 110)])
    assert [f.evidence["to"] for f in found] == ["openai/gpt-4.1"]

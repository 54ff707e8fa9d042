"""runaway_loop: a run that repeats itself (same call, a short cycle) or blows a budget.

Spans are built directly (tests/detectors/spans.py) and fed to a `DetectorEngine`,
usually one span per `consume` as they would stream in; time moves only on `tick`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest

from detectors import DetectorConfig, DetectorEngine, Finding
from ingest import AgentSpan
from tests.detectors.spans import (
    AGENT,
    ROOT,
    RUN,
    SERVICE,
    TENANT,
    TRACE,
    agent_root,
    at,
    heartbeat,
    llm_call,
    pending,
    span,
    tool_call,
)

# The thresholds these tests are written against (not left to the defaults).
RUNAWAY = {
    "max_repeats": 3,
    "max_cycle_repeats": 3,
    "max_steps": 500,
    "max_tokens": 2_000_000,
    "quiet": "10m",
}


def new_engine(**runaway: Any) -> DetectorEngine:
    section = {"runaway_loop": {**RUNAWAY, **runaway}}
    return DetectorEngine(DetectorConfig.from_dict(section))


def loops(engine: DetectorEngine) -> list[Finding]:
    """The runaway_loop finding versions published since the last call."""
    return [finding for finding in engine.take_findings() if finding.kind == "runaway_loop"]


def stream(engine: DetectorEngine, spans: Iterable[AgentSpan]) -> list[Finding]:
    """Feed the spans one per batch; every runaway_loop version published, in order."""
    published: list[Finding] = []
    for one in spans:
        engine.consume([one])
        published += loops(engine)
    return published


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [finding.summary for finding in findings]
    return findings[0]


def sid(n: int) -> str:
    return f"a{n:015x}"


def calls(*tools: str, first: int = 0, args_hash: str = "a1") -> list[AgentSpan]:
    """One tool call per name, 10 s apart, each preceded by an LLM call (100+20 tokens);
    `name:hash` gives a call its own arguments hash."""
    spans: list[AgentSpan] = []
    for k, tool in enumerate(tools, start=first):
        name, _, own_hash = tool.partition(":")
        t = 10 * k + 1
        spans.append(llm_call(sid(2 * k), t, t + 2))
        spans.append(
            tool_call(sid(2 * k + 1), t + 3, t + 8, tool=name, args_hash=own_hash or args_hash)
        )
    return spans


def tool_ids(spans: list[AgentSpan]) -> list[str]:
    return [s.span_id for s in spans if s.tool_name]


# -- repeated calls ----------------------------------------------------------------------


def test_same_tool_same_arguments_three_times_is_a_runaway_loop_while_the_run_goes_on() -> None:
    engine = new_engine()
    spans = calls("search", "search", "search")

    assert stream(engine, spans[:-1]) == []  # two repeats so far
    finding = only(stream(engine, spans[-1:]))

    assert finding.kind == "runaway_loop"
    assert finding.state == "open"  # the agent span has not ended
    assert finding.severity == "error"
    assert (finding.tenant, finding.trace_id, finding.run_id) == (TENANT, TRACE, RUN)
    assert (finding.agent_name, finding.service_name, finding.tool_name) == (
        AGENT,
        SERVICE,
        "search",
    )
    assert finding.opened_at_ns == at(29)  # when the third call ended
    assert "called search 3x with the same arguments" in finding.summary
    assert finding.summary.startswith(f"{AGENT}: run {RUN} ")
    evidence = finding.evidence
    assert evidence["reason"] == "repeated_call"
    assert evidence["count"] == 3
    assert evidence["tool_name"] == "search"
    assert evidence["arguments_hash"] == "a1"
    assert evidence["span_ids"] == tool_ids(spans)
    assert evidence["steps"] == 6
    assert evidence["tokens"] == 3 * 120
    assert evidence["running_s"] == 28.0  # first step start (t=1) to last step end (t=29)


def test_repeats_need_not_be_consecutive() -> None:
    engine = new_engine()

    published = stream(engine, calls("search", "fetch:f1", "search", "lookup:l1", "search"))

    assert only(published).evidence["count"] == 3


def test_two_repeats_are_not_a_loop() -> None:
    engine = new_engine()

    assert stream(engine, calls("search", "search")) == []
    engine.tick(at(100))
    assert loops(engine) == []


def test_same_tool_with_different_arguments_is_not_a_loop() -> None:
    engine = new_engine()

    published = stream(engine, calls(*(f"search:h{k}" for k in range(8))))

    assert published == []


def test_same_arguments_in_other_runs_do_not_add_up() -> None:
    engine = new_engine()
    spans = [tool_call(sid(k), k, k + 1, trace_id=f"{k:032x}", run_id=f"run-{k}") for k in range(5)]

    assert stream(engine, spans) == []


# -- cycles ------------------------------------------------------------------------------


def test_cycle_of_two_calls_repeated_three_times_is_a_loop() -> None:
    engine = new_engine()

    assert stream(engine, calls("search:s1", "fetch:f1", "search:s1", "fetch:f1")) == []
    # The third search is already a repeated call (3x the same arguments) ...
    repeated = only(stream(engine, calls("search:s1", first=4)))
    assert repeated.evidence["reason"] == "repeated_call"
    # ... and the third fetch completes the cycle: the same finding now names it.
    finding = only(stream(engine, calls("fetch:f1", first=5)))

    assert (finding.id, finding.version) == (repeated.id, 2)
    assert finding.evidence["reason"] == "cycle"
    assert finding.evidence["sequence"] == ["search", "fetch"]
    assert finding.evidence["count"] == 3
    assert "cycled search → fetch 3x" in finding.summary
    assert stream(engine, calls("search:s1", first=6)) == []  # named once, not every call


def test_cycle_arriving_in_one_batch_is_named_as_a_cycle() -> None:
    engine = new_engine()

    engine.consume(calls(*["search:s1", "fetch:f1"] * 3))

    finding = only(loops(engine))
    assert (finding.version, finding.evidence["reason"]) == (1, "cycle")
    assert finding.evidence["sequence"] == ["search", "fetch"]


def test_cycle_of_three_calls_repeated_three_times_is_a_loop() -> None:
    engine = new_engine()

    published = stream(engine, calls(*["plan:p1", "search:s1", "fetch:f1"] * 3))

    assert len({finding.id for finding in published}) == 1
    assert published[-1].evidence["sequence"] == ["plan", "search", "fetch"]
    assert published[-1].evidence["count"] == 3


def test_cycle_is_counted_as_it_goes_on() -> None:
    engine = new_engine()

    published = stream(engine, calls(*["search:s1", "fetch:f1"] * 6))

    assert published[-1].evidence["reason"] == "cycle"
    assert published[-1].evidence["count"] == 6


def test_alternating_calls_with_changing_arguments_are_not_a_cycle() -> None:
    engine = new_engine()

    published = stream(engine, calls(*(f"{tool}:{k}" for k in range(4) for tool in "ab")))

    assert published == []


# -- budgets -----------------------------------------------------------------------------


def test_step_budget_counts_llm_and_tool_calls() -> None:
    engine = new_engine(max_steps=5)
    spans = [llm_call(sid(k), 10 * k, 10 * k + 1) for k in range(6)]

    assert stream(engine, spans[:5]) == []  # at the budget, not over it
    finding = only(stream(engine, spans[5:]))

    assert finding.evidence["reason"] == "step_budget"
    assert finding.evidence["count"] == 6
    assert finding.evidence["steps"] == 6
    assert "took 6 steps (budget 5)" in finding.summary


def test_token_budget_counts_input_and_output_tokens() -> None:
    engine = new_engine(max_tokens=1000)
    spans = [llm_call(sid(k), 10 * k, 10 * k + 1, tokens=(400, 100)) for k in range(3)]

    assert stream(engine, spans[:2]) == []  # 1000 tokens: at the budget
    finding = only(stream(engine, spans[2:]))

    assert finding.evidence["reason"] == "token_budget"
    assert finding.evidence["tokens"] == 1500
    assert "used 1500 tokens (budget 1000)" in finding.summary


def test_spans_that_are_not_steps_do_not_count() -> None:
    engine = new_engine(max_steps=2)
    spans = [
        llm_call(sid(1), 1, 2),
        llm_call(sid(2), 3, 4),
        agent_root(5, 9, span_id=sid(3), parent_span_id=ROOT),  # a sub-agent, not a step
        span(sid(4), 6, 7, parent_span_id=ROOT),  # a plain span: no operation, no tool
    ]

    assert stream(engine, spans) == []


# -- lifecycle ---------------------------------------------------------------------------


def test_finding_is_updated_each_time_the_count_doubles_not_on_every_call() -> None:
    engine = new_engine()

    published = stream(engine, calls(*["search"] * 13))

    assert len({finding.id for finding in published}) == 1
    assert [(finding.version, finding.evidence["count"]) for finding in published] == [
        (1, 3),
        (2, 6),
        (3, 12),
    ]
    assert published[-1].state == "open"
    assert published[-1].opened_at_ns == published[0].opened_at_ns
    assert published[-1].updated_at_ns == at(10 * 11 + 9)  # the 12th call's end
    assert len(published[-1].evidence["span_ids"]) == 10  # evidence stays bounded


def test_finding_resolves_when_the_agent_span_ends() -> None:
    engine = new_engine()
    opened = only(stream(engine, calls("search", "search", "search")))

    engine.consume([agent_root(0, 40)])

    resolved = only(loops(engine))
    assert resolved.id == opened.id
    assert resolved.state == "resolved"
    assert resolved.resolved_at_ns == at(40)
    assert resolved.evidence["resolution"] == "run ended"
    assert resolved.evidence["count"] == 3  # the evidence of the loop is kept


def test_loop_that_arrives_with_the_runs_end_is_still_reported() -> None:
    engine = new_engine()

    engine.consume([*calls("search", "search", "search"), agent_root(0, 40)])

    finding = only(loops(engine))  # opened and resolved in one batch: the last version
    assert finding.state == "resolved"
    assert finding.evidence["count"] == 3
    assert finding.evidence["resolution"] == "run ended"


def test_batching_does_not_change_what_is_found() -> None:
    spans = [*calls(*["search"] * 7), agent_root(0, 80)]
    streamed, batched = new_engine(), new_engine()

    last_streamed = stream(streamed, spans)[-1]
    batched.consume(spans)
    last_batched = only(loops(batched))

    assert last_batched.id == last_streamed.id
    assert last_batched.state == last_streamed.state == "resolved"
    assert last_batched.evidence["count"] == 7
    assert last_streamed.evidence["count"] == 6  # updated at 6 (2 x 3), not at 7


def test_a_sub_agent_ending_does_not_end_the_run() -> None:
    engine = new_engine()
    stream(engine, calls("search"))

    sub_agent = agent_root(12, 15, span_id=sid(99), parent_span_id=ROOT, agent_name="helper")
    published = stream(engine, [sub_agent, *calls("search", "search", first=2)])

    assert only(published).evidence["count"] == 3


def test_finding_resolves_after_quiet_with_no_new_step() -> None:
    engine = new_engine()
    opened = only(stream(engine, calls("search", "search", "search")))  # last step ends t=29

    engine.tick(at(29 + 599))
    assert loops(engine) == []
    engine.tick(at(29 + 601))

    resolved = only(loops(engine))
    assert resolved.id == opened.id
    assert resolved.evidence["resolution"] == "no new step"
    assert resolved.resolved_at_ns == at(29 + 601)


@pytest.mark.parametrize("ended_by", ["agent span", "quiet"])
def test_late_spans_after_the_end_do_not_reopen_the_run(ended_by: str) -> None:
    engine = new_engine()
    stream(engine, calls("search", "search", "search"))
    if ended_by == "agent span":
        engine.consume([agent_root(0, 40)])
    else:
        engine.tick(at(700))
    assert only(loops(engine)).state == "resolved"

    late = stream(engine, calls("search", "search", "search", "search", "search", first=3))
    engine.tick(at(800))

    assert late == []
    assert loops(engine) == []


def test_disabled_detector_reports_nothing() -> None:
    engine = new_engine(enabled=False)

    assert stream(engine, calls(*["search"] * 10)) == []


def test_per_agent_override_applies_to_that_agents_runs() -> None:
    config = DetectorConfig.from_dict(
        {"runaway_loop": RUNAWAY, "overrides": {AGENT: {"runaway_loop": {"max_repeats": 5}}}}
    )
    engine = DetectorEngine(config)

    assert stream(engine, calls(*["search"] * 4)) == []
    assert only(stream(engine, calls("search", first=4))).evidence["count"] == 5


def test_marker_spans_are_ignored() -> None:
    engine = new_engine(max_steps=4)
    markers = [
        pending(sid(k), k, operation="execute_tool", tool="search", tool_args_hash="a1")
        for k in range(5)
    ]
    markers += [heartbeat(k, tool_name="search", tool_args_hash="a1") for k in range(5)]

    published = stream(engine, [*markers, *calls("search", "search")])

    assert published == []  # 2 tool calls and 2 LLM calls: at the step budget, not over
    assert engine.snapshot()["runaway_loop"]["runs"][0]["steps"] == 4


# -- persistence -------------------------------------------------------------------------


def round_trip(engine: DetectorEngine) -> DetectorEngine:
    """A fresh engine restored from `engine`'s state, saved and loaded as JSON."""
    state = json.loads(json.dumps(engine.snapshot()))
    restored = DetectorEngine(engine.config)
    restored.restore(state)
    return restored


def test_snapshot_restore_keeps_the_loop_and_its_finding() -> None:
    engine = new_engine()
    opened = only(stream(engine, calls("search", "search", "search")))

    restored = round_trip(engine)

    assert stream(restored, calls("search", "search", first=3)) == []  # 5 < 2 x 3
    updated = only(stream(restored, calls("search", first=5)))
    assert (updated.id, updated.version, updated.evidence["count"]) == (opened.id, 2, 6)
    restored.consume([agent_root(0, 70)])
    resolved = only(loops(restored))
    assert (resolved.id, resolved.version, resolved.state) == (opened.id, 3, "resolved")


def test_snapshot_restore_keeps_a_cycle_in_progress() -> None:
    engine = new_engine()
    stream(engine, calls("search:s1", "fetch:f1", "search:s1", "fetch:f1"))

    restored = round_trip(engine)

    published = stream(restored, calls("search:s1", "fetch:f1", first=4))
    assert published[-1].evidence["sequence"] == ["search", "fetch"]


def test_snapshot_restore_remembers_finished_runs() -> None:
    engine = new_engine()
    stream(engine, calls("search", "search", "search"))
    engine.consume([agent_root(0, 40)])
    engine.take_findings()

    restored = round_trip(engine)

    assert stream(restored, calls("search", "search", "search", first=3)) == []


def test_finding_ids_are_deterministic() -> None:
    def scenario() -> list[dict[str, Any]]:
        engine = new_engine()
        published = stream(engine, calls(*["search"] * 6))
        engine.consume([agent_root(0, 70)])
        return [finding.as_dict() for finding in published + loops(engine)]

    first, second = scenario(), scenario()

    assert len(first) == 3
    assert first == second


def test_a_sub_agent_that_runs_before_any_step_does_not_end_the_run() -> None:
    engine = new_engine()
    sub_agent = agent_root(1, 5, span_id=sid(99), parent_span_id=ROOT, agent_name="helper")
    engine.consume([sub_agent])

    published = stream(engine, calls("search", "search", "search", first=1))

    finding = only(published)
    assert finding.state == "open"
    assert finding.evidence["count"] == 3


def test_the_root_agent_span_ends_the_run_after_a_sub_agent_ended_inside_it() -> None:
    engine = new_engine()
    # Called as a tool after the orchestrator's first steps, with a caller's parent.
    sub_agent = agent_root(12, 15, span_id=sid(99), parent_span_id=sid(98), agent_name="helper")
    stream(engine, [*calls("search", "search"), sub_agent])
    engine.consume(calls("search", first=2))
    assert only(loops(engine)).agent_name == "helper"  # the only agent known so far

    # The orchestrator's agent span, itself called from another system (it has a parent).
    engine.consume(
        [agent_root(0, 40, agent_name="orchestrator", parent_span_id="ca11e4ca11e4ca11")]
    )

    resolved = only(loops(engine))
    assert resolved.state == "resolved"
    assert resolved.agent_name == "orchestrator"  # the outermost agent names the run
    assert engine.detectors[1].snapshot()["finished"]  # the run is over


@pytest.mark.parametrize("batched", [False, True])
def test_severity_is_critical_far_past_the_threshold_however_calls_arrive(batched: bool) -> None:
    engine = new_engine()
    spans = calls(*["search"] * 13)
    if batched:
        engine.consume(spans)
        published = loops(engine)
    else:
        published = stream(engine, spans)

    assert published[-1].severity == "critical"  # 13 >= 4 x max_repeats
    assert published[0].severity == ("critical" if batched else "error")

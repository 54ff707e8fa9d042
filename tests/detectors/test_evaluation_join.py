"""Evaluation results from log records: joined to their trace's agent, or the service."""

from __future__ import annotations

import json

from detectors._evaluation_join import EvaluationJoin
from ingest import AgentSpan, Evaluation
from ingest._agent_spans import EVALUATION_MARKER
from tests.detectors.spans import AGENT, SERVICE, TRACE, agent_root, at, llm_call, span

OTHER_TRACE = "0" * 31 + "1"


def evaluation(at_s: float, score: float, trace_id: str = TRACE, agent: str = "") -> AgentSpan:
    """A log-record evaluation as ingest hands it over: no agent unless the record had one."""
    return span(
        "00f067aa0ba902b7",
        at_s,
        at_s,
        trace_id=trace_id,
        agent_name=agent,
        name="gen_ai.evaluation.result",
        marker=EVALUATION_MARKER,
        evaluations=(Evaluation(at(at_s), "helpfulness", score, ""),),
    )


def test_an_evaluation_after_its_trace_takes_the_trace_agent_and_skips_other_detectors() -> None:
    join = EvaluationJoin()
    _, ready = join.split([agent_root(0, 5), llm_call("a1", 1, 2)])
    assert ready == []
    regular, ready = join.split([evaluation(6, 0.8), llm_call("a2", 6, 7, trace_id=OTHER_TRACE)])

    assert [s.span_id for s in regular] == ["a2"]  # the carrier is not a span
    assert [(e.agent_name, e.evaluations[0].score) for e in ready] == [(AGENT, 0.8)]


def test_an_evaluation_before_its_trace_waits_for_it() -> None:
    join = EvaluationJoin()
    _, ready = join.split([evaluation(1, 0.7)])
    assert ready == []

    _, ready = join.split([agent_root(0, 3, agent_name="billing")])

    assert [e.agent_name for e in ready] == ["billing"]
    assert join.expire(at(1000)) == []  # nothing left waiting


def test_an_agent_span_wins_over_a_step_seen_first() -> None:
    join = EvaluationJoin()
    join.split([llm_call("a1", 1, 2, agent_name=SERVICE)])  # a step attributed to the service
    join.split([agent_root(0, 5)])

    _, ready = join.split([evaluation(6, 0.9)])

    assert [e.agent_name for e in ready] == [AGENT]


def test_an_evaluation_naming_its_agent_needs_no_trace() -> None:
    _, ready = EvaluationJoin().split([evaluation(1, 0.4, agent="triage")])

    assert [e.agent_name for e in ready] == ["triage"]


def test_an_evaluation_whose_trace_never_comes_takes_the_service_after_the_wait() -> None:
    join = EvaluationJoin(max_wait_ns=at(60) - at(0))
    join.split([evaluation(1, 0.5)])

    assert join.expire(at(30)) == []
    expired = join.expire(at(62))

    assert [(e.agent_name, e.evaluations[0].score) for e in expired] == [(SERVICE, 0.5)]
    assert join.expire(at(1000)) == []


def test_waiting_evaluations_survive_a_snapshot_and_restore() -> None:
    join = EvaluationJoin()
    join.split([evaluation(1, 0.25)])
    state = json.loads(json.dumps(join.snapshot()))

    restored = EvaluationJoin()
    restored.restore(state)
    _, ready = restored.split([agent_root(0, 3)])

    assert [(e.agent_name, e.trace_id, e.evaluations[0]) for e in ready] == [
        (AGENT, TRACE, Evaluation(at(1), "helpfulness", 0.25, ""))
    ]


def test_the_trace_memory_stays_bounded() -> None:
    join = EvaluationJoin(max_traces=100)
    for n in range(1000):
        join.split([agent_root(0, 1, trace_id=f"{n:032x}")])

    _, ready = join.split([evaluation(2, 0.5, trace_id=f"{999:032x}")])
    assert [e.agent_name for e in ready] == [AGENT]
    _, ready = join.split([evaluation(2, 0.5, trace_id=f"{0:032x}")])  # long forgotten
    assert ready == []

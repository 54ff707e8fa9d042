"""quality_drift: evaluation scores that drop (suddenly or slowly), and recover."""

from __future__ import annotations

import json
import random
from typing import Any

from detectors import DetectorConfig, DetectorEngine, Finding
from ingest import AgentSpan, Evaluation
from tests.detectors.spans import at, llm_call


def new_engine(**changes: Any) -> DetectorEngine:
    return DetectorEngine(DetectorConfig.from_dict({"quality_drift": changes}))


def drifts(engine: DetectorEngine) -> list[Finding]:
    return [f for f in engine.take_findings() if f.kind == "quality_drift"]


def scored(n: int, score: float | None, label: str = "", model: str = "gpt-4o") -> AgentSpan:
    span = llm_call(f"{n:016x}", n, n + 1, model=model, trace_id=f"{n:032x}")
    return span._replace(evaluations=(Evaluation(at(n + 1), "relevance", score, label),))


def feed(engine: DetectorEngine, spans: list[AgentSpan]) -> list[Finding]:
    seen: list[Finding] = []
    for span in spans:
        engine.consume([span])
        seen += drifts(engine)
    return seen


def noisy(rng: random.Random, mean: float, start: int, count: int) -> list[AgentSpan]:
    return [
        scored(n, min(1.0, max(0.0, rng.gauss(mean, 0.05)))) for n in range(start, start + count)
    ]


def test_stable_scores_raise_nothing() -> None:
    rng = random.Random(1)
    assert feed(new_engine(), noisy(rng, 0.85, 0, 2000)) == []


def test_a_sudden_drop_is_found_and_resolves_when_scores_recover() -> None:
    rng = random.Random(2)
    engine = new_engine()
    feed(engine, noisy(rng, 0.85, 0, 200))

    dropped = feed(engine, noisy(rng, 0.65, 200, 60))

    assert len(dropped) == 1
    drift = dropped[0]
    assert drift.state == "open"
    assert drift.opened_at_ns <= at(200 + 30)  # within one window of scores
    evidence = drift.evidence
    assert evidence["evaluation_name"] == "relevance"
    assert 0.83 <= evidence["reference_mean"] <= 0.87
    assert evidence["recent_mean"] < 0.8
    assert evidence["p_value"] <= 0.01
    # error from a drop of two standard deviations, else warning
    assert (drift.severity == "error") == (evidence["drop"] >= 2 * evidence["reference_std"])
    assert "relevance scores dropped from 0.8" in drift.summary

    recovered = feed(engine, noisy(rng, 0.85, 260, 100))

    assert [(f.id, f.state) for f in recovered] == [(drift.id, "resolved")]


def test_a_slow_decay_is_found() -> None:
    rng = random.Random(3)
    engine = new_engine()
    feed(engine, noisy(rng, 0.85, 0, 100))
    decaying = [
        scored(n, min(1.0, max(0.0, rng.gauss(0.85 - 0.0005 * (n - 100), 0.05))))
        for n in range(100, 600)
    ]

    found = feed(engine, decaying)

    assert [f.state for f in found] == ["open"]
    assert found[0].evidence["recent_mean"] < 0.8


def test_pass_fail_labels_are_scores() -> None:
    engine = new_engine()
    labels = ["fail" if n % 10 == 0 else "pass" for n in range(200)]  # 90% pass
    feed(engine, [scored(n, None, label) for n, label in enumerate(labels)])

    found = feed(engine, [scored(n, None, "fail" if n % 2 else "pass") for n in range(200, 260)])

    assert [f.state for f in found] == ["open"]
    assert found[0].evidence["reference_mean"] == 0.9


def test_unknown_labels_and_missing_scores_are_ignored() -> None:
    engine = new_engine()
    assert feed(engine, [scored(n, None, "meh") for n in range(300)]) == []


def test_a_model_swap_before_the_drop_is_named_as_the_likely_cause() -> None:
    rng = random.Random(4)
    engine = new_engine()
    feed(engine, noisy(rng, 0.85, 0, 100))
    swapped = [
        scored(n, min(1.0, max(0.0, rng.gauss(0.6, 0.05))), model="gpt-4.1-mini")
        for n in range(100, 160)
    ]
    seen = []
    for span in swapped:
        engine.consume([span])
        seen += engine.take_findings()

    change = next(f for f in seen if f.kind == "change_point")
    drift = next(f for f in seen if f.kind == "quality_drift")
    assert [cause["id"] for cause in drift.evidence["likely_causes"]] == [change.id]
    assert "likely cause: planner: model changed" in drift.summary


def test_state_survives_a_snapshot_round_trip() -> None:
    rng = random.Random(5)
    engine = new_engine()
    feed(engine, noisy(rng, 0.85, 0, 100))
    restored = new_engine()
    restored.restore(json.loads(json.dumps(engine.snapshot())))
    assert [f.state for f in feed(restored, noisy(rng, 0.6, 100, 40))] == ["open"]

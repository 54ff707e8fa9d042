"""quality_drift from behaviour: runs' feature vectors, recent vs reference."""

from __future__ import annotations

import json
import random

from detectors import DetectorConfig, DetectorEngine, Finding
from detectors._common import NS
from ingest import AgentSpan
from tests.detectors.spans import T0, agent_root, llm_call, tool_call

SETTINGS = {
    "behaviour_reference_runs": 100,
    "behaviour_window_runs": 50,
    "behaviour_check_every": 25,
}


def new_engine() -> DetectorEngine:
    return DetectorEngine(DetectorConfig.from_dict({"quality_drift": SETTINGS}))


def drifts(engine: DetectorEngine) -> list[Finding]:
    return [
        f
        for f in engine.take_findings()
        if f.kind == "quality_drift" and f.evidence.get("signal") == "behaviour"
    ]


def run(
    rng: random.Random, n: int, steps: float, search_share: float, spacing: float = 100.0
) -> list[AgentSpan]:
    """One run: a few LLM + tool steps, then its agent span (exported last); runs
    start `spacing` seconds apart."""
    trace = f"{n:032x}"
    start = n * spacing
    spans: list[AgentSpan] = []
    t = start
    for k in range(max(1, round(rng.gauss(steps, 1.5)))):
        spans.append(
            llm_call(
                f"{n:08x}{2 * k:08x}", t, t + 1, tokens=(rng.randint(80, 120), 20), trace_id=trace
            )
        )
        tool = "search" if rng.random() < search_share else "crm.lookup"
        spans.append(tool_call(f"{n:08x}{2 * k + 1:08x}", t + 1, t + 2, tool=tool, trace_id=trace))
        t += 2
    spans.append(agent_root(start, t + 0.5, span_id=f"{n:016x}", trace_id=trace))
    return spans


def feed(engine: DetectorEngine, runs: list[list[AgentSpan]]) -> list[Finding]:
    seen: list[Finding] = []
    for spans in runs:
        engine.consume(spans)
        seen += drifts(engine)
    return seen


def test_runs_that_keep_their_shape_raise_nothing() -> None:
    rng = random.Random(1)
    engine = new_engine()
    assert feed(engine, [run(rng, n, 6, 0.6) for n in range(400)]) == []


def test_runs_that_change_shape_are_behaviour_drift_naming_what_changed() -> None:
    rng = random.Random(2)
    engine = new_engine()
    feed(engine, [run(rng, n, 6, 0.6) for n in range(150)])

    found = feed(engine, [run(rng, n, 14, 0.1) for n in range(150, 250)])

    assert [f.state for f in found] == ["open"]
    evidence = found[0].evidence
    assert evidence["auc"] >= 0.7
    drivers = {d["feature"] for d in evidence["drivers"][:3]}
    assert drivers & {"steps", "llm_calls", "tool_calls", "tool_share:search", "input_tokens"}
    assert "runs behave differently" in found[0].summary

    back = feed(engine, [run(rng, n, 6, 0.6) for n in range(250, 400)])

    assert [(f.id, f.state) for f in back] == [(found[0].id, "resolved")]


def test_runs_whose_agent_span_comes_first_are_read_the_same() -> None:
    """Whole traces exported at once (a Collector's groupbytrace, a replay) may put the
    agent span before its steps: the run still ends with the batch that holds them."""
    rng = random.Random(2)
    engine = new_engine()
    root_first = [list(reversed(run(rng, n, 6, 0.6))) for n in range(150)]
    feed(engine, root_first)

    changed = [list(reversed(run(rng, n, 14, 0.1))) for n in range(150, 250)]
    found = feed(engine, changed)

    assert [f.state for f in found] == ["open"]
    assert found[0].evidence["auc"] >= 0.7


def test_state_survives_a_snapshot_round_trip() -> None:
    rng = random.Random(3)
    engine = new_engine()
    feed(engine, [run(rng, n, 6, 0.6) for n in range(120)])
    restored = new_engine()
    restored.restore(json.loads(json.dumps(engine.snapshot())))
    found = feed(restored, [run(rng, n, 14, 0.1) for n in range(120, 220)])
    assert [f.state for f in found] == ["open"]


def test_a_busy_agent_is_checked_at_most_once_per_interval_of_span_time() -> None:
    """A check costs ~0.05 s of CPU; an agent finishing a run a second would otherwise be
    checked every 25 s of its traffic, and at ingest rates several times a second."""
    rng = random.Random(3)
    busy = {**SETTINGS, "behaviour_check_interval": "5m"}
    engine = DetectorEngine(DetectorConfig.from_dict({"quality_drift": busy}))
    # The first check comes as run 149 ends, at 149 + 12.5 s (six steps of 2 s, + 0.5).
    assert feed(engine, [run(rng, n, 6, 0.6, spacing=1) for n in range(150)]) == []

    # The shape changes at once; the next check waits for 161.5 + 300 s of span time.
    found = feed(engine, [run(rng, n, 14, 0.1, spacing=1) for n in range(150, 500)])

    assert [f.state for f in found] == ["open"]
    assert found[0].opened_at_ns - T0 >= 461.5 * NS


def test_with_a_short_interval_the_same_agent_is_checked_every_check_every_runs() -> None:
    rng = random.Random(3)
    eager = {**SETTINGS, "behaviour_check_interval": "1s"}
    engine = DetectorEngine(DetectorConfig.from_dict({"quality_drift": eager}))
    feed(engine, [run(rng, n, 6, 0.6, spacing=1) for n in range(150)])

    found = feed(engine, [run(rng, n, 14, 0.1, spacing=1) for n in range(150, 500)])

    assert [f.state for f in found] == ["open"]
    assert found[0].opened_at_ns - T0 < 300 * NS

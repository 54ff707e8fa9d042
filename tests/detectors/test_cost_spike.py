"""cost_spike: an agent's LLM cost far above its own baseline, per window or per run.

Event time throughout; the window is scaled down to a minute (5 s buckets) so a test's
baseline is minutes of traffic, not days.
"""

from __future__ import annotations

import json
import random
import zlib
from typing import Any

from detectors import DetectorConfig, DetectorEngine, Finding
from ingest import AgentSpan
from ingest._prices import PriceTable
from tests.detectors.spans import AGENT, SERVICE, agent_root, at, llm_call

# $10 per 1M input tokens, $30 per 1M output: 1000 in + 200 out = $0.016.
PRICES = PriceTable.load(
    default=False, overrides=[{"model": "test-model", "input": 10.0, "output": 30.0}]
)
FAST: dict[str, Any] = {
    "window": "60s",
    "baseline_periods": 60,
    "min_baseline_periods": 10,
    "min_calls": 5,
    "min_usd": 0.05,
    "settle": "2m",
    "min_runs": 10,
    "min_run_usd": 0.01,
}
# The slow detectors are off: they have nothing to say about this traffic.
OTHERS_OFF: dict[str, Any] = {
    "zombie_run": {"enabled": False},
    "quality_drift": {"behaviour": False},
}
RUN_EVERY_S = 10  # steady traffic: a run of 2-4 calls every 10 s, ~$0.27 a minute


def new_engine(
    prices: PriceTable = PRICES, overrides: dict[str, Any] | None = None, **changes: Any
) -> DetectorEngine:
    section: dict[str, Any] = {"cost_spike": {**FAST, **changes}, **OTHERS_OFF}
    if overrides:
        section["overrides"] = overrides
    return DetectorEngine(DetectorConfig.from_dict(section), prices)


def spikes(engine: DetectorEngine) -> list[Finding]:
    return [f for f in engine.take_findings() if f.kind == "cost_spike"]


def run(
    number: int,
    start_s: float,
    calls: int,
    tokens: tuple[int, int] = (1000, 200),
    agent: str = AGENT,
    ended: bool = True,
    model: str = "test-model",
    **fields: Any,
) -> list[AgentSpan]:
    """One run (its own trace): `calls` LLM calls a second apart, then its agent span."""
    trace = f"{number:032x}"
    spans = [
        llm_call(
            f"{number:08x}{k:08x}",
            start_s + k,
            start_s + k + 0.5,
            tokens=tokens,
            trace_id=trace,
            agent_name=agent,
            run_id=f"run-{number}",
            model=model,
            **fields,
        )
        for k in range(calls)
    ]
    if ended:
        spans.append(
            agent_root(
                start_s,
                start_s + calls,
                span_id=f"{number:016x}",
                trace_id=trace,
                agent_name=agent,
                run_id=f"run-{number}",
            )
        )
    return spans


def steady(
    engine: DetectorEngine,
    start_s: int,
    end_s: int,
    *agents: str,
    extra: dict[int, list[AgentSpan]] | None = None,
    **fields: Any,
) -> list[Finding]:
    """Per agent (default AGENT), a run every RUN_EVERY_S (2-4 calls, tokens +-20%),
    fed and ticked every 10 s; `extra` spans are fed with the batch of the second they
    are keyed by."""
    rng = random.Random(start_s)
    seen: list[Finding] = []
    for second in range(start_s, end_s, RUN_EVERY_S):
        batch: list[AgentSpan] = []
        for agent in agents or (AGENT,):
            tokens = (rng.randint(800, 1200), rng.randint(160, 240))
            number = zlib.crc32(f"{agent} {second}".encode())
            batch += run(number, second, rng.randint(2, 4), tokens, agent, **fields)
        for key in range(second, second + RUN_EVERY_S):
            batch += (extra or {}).get(key, [])
        engine.consume(batch)
        engine.tick(at(second + RUN_EVERY_S))
        seen += spikes(engine)
    return seen


def loop(
    number: int, start_s: int, seconds: int, agent: str = AGENT, ended: bool = True
) -> dict[int, list[AgentSpan]]:
    """A run that burns 20k input tokens a second ($0.215 a call), keyed by second."""
    spans = run(number, start_s, seconds, (20_000, 500), agent, ended=ended)
    by_second: dict[int, list[AgentSpan]] = {}
    for span in spans:
        by_second.setdefault(int((span.end_ns - at(0)) // 10**9), []).append(span)
    return by_second


def test_a_steady_agent_raises_nothing_over_a_long_clean_stretch() -> None:
    engine = new_engine()
    assert steady(engine, 0, 4 * 3600) == []  # four hours: 240 windows, 1440 runs


def test_a_loop_burning_tokens_is_found_with_its_evidence_and_resolves() -> None:
    engine = new_engine()
    assert steady(engine, 0, 1200) == []  # 20 minutes of baseline

    # A hung loop: its agent span never comes while it burns.
    during = steady(engine, 1200, 1320, extra=loop(99, 1200, 120, ended=False))

    opened = during[0]
    assert (opened.state, opened.agent_name, opened.kind) == ("open", AGENT, "cost_spike")
    assert opened.opened_at_ns - at(1200) <= 20 * 10**9
    evidence = opened.evidence
    assert evidence["check"] == "window"
    assert evidence["cost_usd"] > 3 * evidence["baseline_usd"]
    assert 0.15 < evidence["baseline_usd"] < 0.45  # ~$0.27 a minute
    assert evidence["calls"] >= 5
    assert evidence["top_models"][0]["model"] == "test-model"
    assert evidence["trace_id"] == opened.trace_id == f"{99:032x}"  # the costliest call's
    assert evidence["cost_per_call_usd"] > 3 * evidence["baseline_cost_per_call_usd"]
    assert evidence["baseline_periods"] >= 10
    assert json.loads(json.dumps(evidence)) == evidence  # plain JSON (no inf, no NaN)
    assert f"{AGENT} spent $" in opened.summary
    # The loop grows to ~50x a normal minute: the finding is raised to an error.
    assert [f.severity for f in during][-1] == "error"
    assert len({f.id for f in during}) == 1

    after = steady(engine, 1320, 1800)
    resolved = [f for f in after if f.state == "resolved"]
    assert [f.id for f in resolved] == [opened.id]
    # Resolved once a window (60 s) has passed the loop and settle (2 m) is over.
    assert at(1320 + 120) <= resolved[0].resolved_at_ns <= at(1320 + 60 + 120 + 20)
    assert "cost back to normal" in resolved[0].evidence["resolution"]


def test_a_run_costing_far_more_than_recent_runs_is_found_when_it_ends() -> None:
    engine = new_engine(min_usd=1000.0)  # the window check never fires here
    assert steady(engine, 0, 300) == []  # 30 runs
    # Twice the usual cost: within 3 x p99.
    assert steady(engine, 300, 310, extra={300: run(500, 301, 6)}) == []

    found = steady(engine, 310, 320, extra={310: run(501, 310, 8, (20_000, 500))})

    (opened,) = found
    assert opened.evidence["check"] == "run"
    assert (opened.trace_id, opened.run_id) == (f"{501:032x}", "run-501")
    assert opened.evidence["run_id"] == "run-501"
    assert opened.evidence["calls"] == 8
    assert abs(opened.evidence["cost_usd"] - 8 * 0.215) < 1e-9
    assert opened.evidence["baseline_runs"] >= 30
    assert opened.evidence["cost_usd"] > opened.evidence["threshold_usd"]
    assert opened.severity == "error"  # > 10 x the p99
    assert "a run cost $1.72" in opened.summary

    later = steady(engine, 320, 600)
    assert [(f.id, f.state) for f in later] == [(opened.id, "resolved")]


def test_no_verdict_before_the_baseline_has_enough_periods() -> None:
    engine = new_engine()
    assert steady(engine, 0, 300, extra=loop(99, 240, 60)) == []  # 4 periods of history


def test_cheap_noise_never_pages() -> None:
    # A tenfold jump that stays under min_usd in the window.
    engine = new_engine(min_usd=5.0, min_runs=1000)
    assert steady(engine, 0, 900) == []
    assert steady(engine, 900, 1200, extra=loop(99, 900, 10)) == []  # ~$2.4 in a minute


def test_a_few_expensive_calls_are_too_few_for_a_verdict() -> None:
    engine = new_engine(min_runs=1000)
    # other-agent makes one call a minute (x is the steady traffic around it).
    quiet = {s: run(1000 + s, s, 1, agent="other-agent") for s in range(0, 900, 60)}
    assert steady(engine, 0, 900, "x", extra=quiet) == []
    burst = run(99, 905, 3, (200_000, 500), "other-agent")  # $6, but 3 calls in the window
    assert steady(engine, 900, 960, "x", extra={900: burst}) == []
    # ... and five such calls in a window are found.
    more = run(98, 960, 5, (200_000, 500), "other-agent")
    found = steady(engine, 960, 970, "x", extra={960: more})
    assert [f.agent_name for f in found] == ["other-agent"]


def test_calls_known_only_by_their_service_wait_for_their_agent() -> None:
    engine = new_engine()
    # The calls arrive with the service as their agent; the agent span names the agent.
    unattributed = {
        s: [x if x.operation == "invoke_agent" else x._replace(agent_name=SERVICE) for x in spans]
        for s, spans in loop(99, 1200, 60).items()
    }
    steady(engine, 0, 1200)
    found = steady(engine, 1200, 1290, extra=unattributed)
    assert {f.agent_name for f in found} == {AGENT}


def test_state_survives_a_snapshot_round_trip_mid_stream() -> None:
    straight = new_engine()
    steady(straight, 0, 1200)
    saved = json.loads(json.dumps(straight.snapshot()))
    restored = new_engine()
    restored.restore(saved)

    spike = loop(99, 1200, 120)
    expected = steady(straight, 1200, 1400, extra=spike)
    assert expected
    assert [f.as_dict() for f in steady(restored, 1200, 1400, extra=spike)] == [
        f.as_dict() for f in expected
    ]


def test_an_open_finding_survives_a_restore_and_resolves_after_it() -> None:
    engine = new_engine()
    steady(engine, 0, 1200)
    (opened, *_) = steady(engine, 1200, 1260, extra=loop(99, 1200, 60))
    restored = new_engine()
    restored.restore(json.loads(json.dumps(engine.snapshot())))
    after = steady(restored, 1260, 1600)
    assert [(f.id, f.state) for f in after] == [(opened.id, "resolved")]


def test_per_agent_overrides_apply_to_that_agent_only() -> None:
    engine = new_engine(
        overrides={"batch-agent": {"cost_spike": {"min_ratio": 100, "runs": False}}}
    )
    assert steady(engine, 0, 1200, AGENT, "batch-agent") == []
    both = loop(99, 1200, 60)
    for second, spans in loop(98, 1200, 60, "batch-agent").items():
        both.setdefault(second, []).extend(spans)
    found = steady(engine, 1200, 1320, AGENT, "batch-agent", extra=both)
    assert {f.agent_name for f in found} == {AGENT}

    off = new_engine(overrides={AGENT: {"cost_spike": {"enabled": False}}})
    steady(off, 0, 1200)
    assert steady(off, 1200, 1320, extra=loop(99, 1200, 60)) == []


def test_the_configs_pricing_prices_the_calls() -> None:
    # T0 is 2023-11: the shipped table prices gpt-4o only from 2024-05-13.
    shipped = new_engine(prices=PriceTable.load())
    steady(shipped, 0, 1200, model="gpt-4o", provider="openai")
    spike = loop(99, 1200, 60)
    spike = {
        s: [x._replace(model="gpt-4o", provider="openai") for x in v] for s, v in spike.items()
    }
    assert steady(shipped, 1200, 1320, extra=spike, model="gpt-4o", provider="openai") == []

    priced = new_engine(
        prices=PriceTable.load(
            overrides=[{"provider": "openai", "model": "gpt-4o", "input": 10.0, "output": 30.0}]
        )
    )
    steady(priced, 0, 1200, model="gpt-4o", provider="openai")
    found = steady(priced, 1200, 1320, extra=spike, model="gpt-4o", provider="openai")
    assert found
    assert found[0].evidence["top_models"][0]["model"] == "gpt-4o"
    # The window holds whole loop calls at the override's rates: $0.215 each.
    cost = found[-1].evidence["cost_usd"]
    assert cost > 0.215 * 5


def test_a_span_reporting_its_own_cost_keeps_it() -> None:
    engine = new_engine(min_usd=1000.0)
    steady(engine, 0, 300)
    own = run(501, 311, 2, attributes={"llm.cost.total": "3.5"})
    (opened,) = steady(engine, 310, 320, extra={310: own})
    assert opened.evidence["cost_usd"] == 7.0


def test_the_ordered_run_history_follows_the_runs_as_they_come_and_go() -> None:
    from detectors._cost_spike import _remember_run, _restored_series, _Series, _series_state

    rng = random.Random(5)
    series = _Series("t", AGENT, SERVICE, bucket_ns=1)
    for _ in range(500):
        cost = rng.choice([0.0, 0.5, 1.0, rng.random() * 10])  # ties included
        _remember_run(series, cost, keep=37)
        assert series.ordered_runs == sorted(series.runs)
    assert len(series.runs) == 37

    restored = _restored_series(json.loads(json.dumps(_series_state(series))), bucket_ns=1)
    assert restored.ordered_runs == sorted(series.runs)

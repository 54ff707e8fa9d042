"""The detector benchmark (`bench/detectors.py`), small: the bars hold on a short corpus.

A 12 h incident corpus (3 labelled incidents per detector but cost_spike) and a 24 h
clean one, each after the 12 h warm-up (cost_spike's: 24 h), and a cost corpus with 3
token burns (a working day after a 24 h warm-up, replayed through cost_spike alone),
replayed through the real detectors with the benchmark's settings: per detector,
precision and recall of at least 0.95, the p95 time to detect within its bound ("two
evaluation intervals", `bench.detectors.BOUNDS`), and at most
one false positive per 24 h of clean traffic. Also: the generator's background
failures and condition incidents (outages, quality decays, model swaps, token burns)
and their ground truth, and the scoring itself on a hand-made corpus.
"""

from __future__ import annotations

import statistics

import pytest

from bench.detectors import (
    DETECTORS,
    GRACE_S,
    MAX_FP_PER_24H,
    MIN_PRECISION,
    MIN_RECALL,
    SETTINGS,
    Corpus,
    Report,
    bars_missed,
    benchmark,
    render,
    scaled_sigmoid,
    score,
)
from detectors import DetectorConfig, Finding
from ingest import AgentSpan
from ingest._prices import PriceTable
from tests.detectors.traffic import (
    BENCH_FLEET,
    NS,
    START_NS,
    SUCCESS_ATTRIBUTE,
    GroundTruth,
    Incident,
    Traffic,
    generate,
)

H = 3600.0


def _at(hours: float) -> int:
    return START_NS + round(hours * H * NS)


@pytest.fixture(scope="module")
def report() -> Report:
    return benchmark(seed=1, hours=12, clean_hours=24, per_detector=3, jobs=2)


def test_a_small_benchmark_meets_every_bar(report: Report) -> None:
    print("\n" + render(report))
    for kind in DETECTORS:
        row = report.rows[kind]
        assert row.incidents == 3, kind
        assert (row.precision or 0.0) >= MIN_PRECISION, kind
        assert (row.recall or 0.0) >= MIN_RECALL, kind
        assert row.ttd_p95_of_bound is not None, kind
        assert row.ttd_p95_of_bound <= 1.0, kind
        assert row.fp_per_24h is not None, kind
        assert row.fp_per_24h <= MAX_FP_PER_24H, kind
    assert bars_missed(report.rows) == []
    # quality_drift's model-swap drops are found, with the swap named as the likely cause.
    swap_drops = [
        d for d in report.detections if d.detector == "quality_drift" and "model_swap" in d.incident
    ]
    assert swap_drops
    assert all(d.found and "likely cause" in d.summary for d in swap_drops)


# -- the generator -------------------------------------------------------------------


def test_the_bench_fleet_fails_3_to_15_percent_of_tool_calls_some_inside_a_result() -> None:
    rates = [tool.error_rate for agent in BENCH_FLEET for tool in agent.tools]
    assert min(rates) >= 0.03
    assert max(rates) <= 0.15
    for agent in BENCH_FLEET:
        assert len({tool.error_rate for tool in agent.tools}) >= len(agent.tools) - 1
    traffic = generate(4, seed=5, fleet=BENCH_FLEET)
    calls = errors = soft = 0
    for batch in traffic.batches:
        for span in batch.spans:
            if span.operation != "execute_tool" or span.marker:
                continue
            calls += 1
            errors += span.is_error
            if span.attributes.get(SUCCESS_ATTRIBUTE) == "false":
                assert not span.is_error
                soft += 1
            if span.is_error:
                assert span.error_type
    assert 0.03 <= (errors + soft) / calls <= 0.15
    assert soft > 0.1 * (errors + soft)


def test_condition_incidents_change_the_healthy_runs_and_record_their_ground_truth() -> None:
    incidents = [
        Incident("tool_outage", 1.0 * H, "research-agent", tool_name="web.fetch", duration_s=H),
        Incident("quality_decay", 0.5 * H, "support-agent", duration_s=H, drop=0.3, hold_s=H),
        Incident("model_swap", 1.0 * H, "billing-agent", model="claude-opus-4.1", drop=0.2),
    ]
    traffic = generate(3, seed=5, fleet=BENCH_FLEET, incidents=incidents)
    healthy = generate(3, seed=5, fleet=BENCH_FLEET)
    assert traffic.runs == healthy.runs  # the same runs, under other conditions
    outage, decay, swap, swap_drop = traffic.truth
    assert (outage.kind, outage.tool_name) == ("tool_failure_spike", "web.fetch")
    assert (outage.start_ns, outage.end_ns) == (_at(1.0), _at(2.0))
    assert {"research-agent", "research-worker", ""} <= set(outage.agent_names)
    assert (decay.kind, decay.start_ns, decay.end_ns) == ("quality_drift", _at(0.5), _at(2.5))
    assert (swap.kind, swap.model) == ("change_point", "anthropic/claude-opus-4.1")
    assert (swap_drop.kind, swap_drop.end_ns) == ("quality_drift", _at(2.0))

    fetches: dict[bool, list[bool]] = {True: [], False: []}
    scores: dict[bool, list[float]] = {True: [], False: []}
    models = set()
    for batch in traffic.batches:
        for span in batch.spans:
            if (
                span.tool_name == "web.fetch"
                and span.operation == "execute_tool"
                and not span.marker
            ):
                failed = span.is_error or span.attributes.get(SUCCESS_ATTRIBUTE) == "false"
                fetches[outage.start_ns <= span.start_ns < outage.end_ns].append(failed)
            if span.agent_name == "support-agent":
                for evaluation in span.evaluations:
                    down = _at(1.5) <= evaluation.time_ns < _at(2.5)
                    scores[down].append(evaluation.score or 0.0)
            if span.operation == "chat" and span.service_name == "billing-svc":
                after = span.start_ns >= swap.start_ns
                models.add((after, span.provider, span.model))
    assert statistics.fmean(fetches[True]) > 0.35 > 0.2 > statistics.fmean(fetches[False])
    assert statistics.median(scores[False]) - statistics.median(scores[True]) > 0.2
    assert models == {
        (False, "anthropic", "claude-sonnet-4-20250514"),
        (True, "anthropic", "claude-opus-4.1"),
    }


def test_a_token_burn_multiplies_one_agent_s_prompts_and_nothing_else() -> None:
    burn = Incident("token_burn", 1.0 * H, "support-agent", duration_s=0.5 * H, factor=8.0)
    traffic = generate(2, seed=5, fleet=BENCH_FLEET, incidents=[burn])
    healthy = generate(2, seed=5, fleet=BENCH_FLEET)
    assert traffic.runs == healthy.runs
    (truth,) = traffic.truth
    assert (truth.kind, truth.start_ns, truth.end_ns) == ("cost_spike", _at(1.0), _at(1.5))
    assert truth.onset_ns == truth.start_ns
    assert set(truth.agent_names) == {"support-agent", "support-api"}

    def spans(traffic: Traffic) -> dict[str, AgentSpan]:
        return {span.span_id: span for batch in traffic.batches for span in batch.spans}

    burnt, usual = spans(traffic), spans(healthy)
    ratios = []
    for span_id, before in usual.items():
        after = burnt.get(span_id)
        in_burn = truth.start_ns <= before.start_ns < truth.end_ns
        llm_call = before.operation == "chat" and not before.marker
        if before.service_name != "support-api" or not in_burn or not llm_call:
            assert after == before  # other agents, other times, other spans: as they were
            continue
        assert after is not None
        assert (after.model, after.output_tokens) == (before.model, before.output_tokens)
        ratios.append(after.input_tokens / before.input_tokens)
    assert len(ratios) > 20
    assert min(ratios) == pytest.approx(8.0, abs=0.01) == max(ratios)
    # Every model of the fleet is priced by the shipped table: cost_spike sees them all.
    prices = PriceTable.load()
    models = {
        (span.model, span.provider)
        for span in usual.values()
        if span.operation == "chat" and not span.marker
    }
    assert len(models) == len(BENCH_FLEET)
    assert all(prices.find(model, provider, START_NS) for model, provider in models)


# -- the scoring ---------------------------------------------------------------------


def _finding(name: str, hours: float, **fields: object) -> Finding:
    values: dict[str, object] = {
        "id": name,
        "kind": "tool_failure_spike",
        "tenant": "acme",
        "severity": "error",
        "summary": name,
        "opened_at_ns": _at(hours),
        "updated_at_ns": _at(hours),
        **fields,
    }
    return Finding(**values)  # type: ignore[arg-type]


def test_findings_are_scored_against_the_ground_truth() -> None:
    def outage(tool: str, start_h: float) -> GroundTruth:
        incident = Incident("tool_outage", start_h * H, "support-agent", tool_name=tool)
        names = ("support-agent", "support-api", "")
        start, end = _at(start_h), _at(start_h + 1)
        return GroundTruth(incident, "tool_failure_spike", names, start, end, start, tool)

    truth = [outage("kb.search", 13), outage("orders.get", 15), outage("email.send", 17)]
    grace_h = GRACE_S["tool_failure_spike"] / H
    findings = [
        _finding("early", 13.1, agent_name="support-api", tool_name="kb.search"),
        _finding("duplicate", 13.2, agent_name="", tool_name="kb.search"),
        _finding("late", 15.9, agent_name="support-agent", tool_name="orders.get"),
        _finding("wrong tool", 17.1, agent_name="support-api", tool_name="kb.search"),
        _finding("after grace", 18.1 + grace_h, agent_name="support-api", tool_name="email.send"),
        _finding("warm-up", 5, agent_name="support-api", tool_name="kb.search"),
    ]
    labelled = Corpus(
        hours=12,
        warmup_ns=_at(12),
        end_ns=_at(24),
        runs=0,
        spans=0,
        findings=findings,
        opened={f.id: f for f in findings},
        seen_at={f.id: f.opened_at_ns for f in findings},
        truth=truth,
        seconds=0.0,
    )
    clean = Corpus(48, _at(12), _at(60), 0, 0, [_finding("clean", 30)], {}, {}, [], 0.0)
    rows, detections = score(labelled, clean, DetectorConfig.from_dict(SETTINGS))
    row = rows["tool_failure_spike"]
    assert (row.incidents, row.found, row.findings) == (3, 2, 5)
    assert (row.false_positives, row.duplicates, row.warmup_findings) == (2, 1, 1)
    assert row.precision == 0.6
    assert row.recall == pytest.approx(2 / 3, abs=1e-3)
    assert row.fp_per_24h == 0.5  # one in 48 h
    assert row.late == 0  # 54 minutes in: within 2 x the 30 min short window
    assert [d.delay_s for d in detections] == [360.0, 3240.0, None]
    assert row.ttd_p95_of_bound == pytest.approx(3240 / 3600, abs=1e-3)
    # NAB: ~1 for the early one, 0.1 for the late one, -1 for the miss, -0.11 per FP.
    early = scaled_sigmoid((360 - 7200) / 7200)
    late = scaled_sigmoid((3240 - 7200) / 7200)
    raw = early + late - 1.0 - 2 * 0.11
    perfect, null = 3 * scaled_sigmoid(-1.0), -3.0
    assert row.nab == round(100 * (raw - null) / (perfect - null), 1)
    assert bars_missed(rows)


def test_a_cost_spike_after_a_swap_to_a_pricier_model_is_real_spend_not_scored() -> None:
    def swap(agent: str, service: str, model: str, hours: float) -> GroundTruth:
        incident = Incident("model_swap", hours * H, agent, model=model)
        at = _at(hours)
        return GroundTruth(incident, "change_point", (agent, service), at, at, at, model=model)

    truth = [
        swap("support-agent", "support-api", "openai/gpt-4o-mini", 13),  # $0.15 < $0.40
        swap("research-agent", "research-worker", "openai/gpt-4o", 13),  # $2.50 > $1.10
    ]
    findings = [
        _finding("cheaper", 14, kind="cost_spike", agent_name="support-agent"),
        _finding("pricier", 15, kind="cost_spike", agent_name="research-worker"),
        _finding("a day on", 13.5 + 24, kind="cost_spike", agent_name="research-agent"),
    ]
    labelled = Corpus(
        hours=42,
        warmup_ns=_at(12),
        end_ns=_at(54),
        runs=0,
        spans=0,
        findings=findings,
        opened={f.id: f for f in findings},
        seen_at={f.id: f.opened_at_ns for f in findings},
        truth=truth,
        seconds=0.0,
    )
    clean = Corpus(24, _at(12), _at(36), 0, 0, [], {}, {}, [], 0.0)
    rows, _ = score(labelled, clean, DetectorConfig.from_dict(SETTINGS))
    row = rows["cost_spike"]
    assert (row.explained, row.findings, row.false_positives) == (1, 2, 2)
    assert row.incidents == 0


def test_nab_rewards_early_detection() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866, abs=1e-4)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-0.5) > scaled_sigmoid(-0.25) > 0 > scaled_sigmoid(0.5)
    assert scaled_sigmoid(4.0) == -1.0

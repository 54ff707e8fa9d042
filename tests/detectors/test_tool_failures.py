"""tool_failure_spike: a tool failing far above its own baseline, on event time."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from detectors import DetectorConfig, DetectorEngine, Finding
from detectors._tool_failures import ToolFailureSpikeDetector, _rescan
from ingest import AgentSpan
from tests.detectors.spans import at, tool_call

# Windows scaled down so a test spans minutes: 60 s and 15 s, 4x the baseline.
SPIKE: dict[str, Any] = {
    "windows": [{"long": "60s", "short": "15s", "burn_rate": 4, "severity": "error"}],
    "min_calls": 10,
}
CALLS_PER_S = 2


def new_engine(**changes: Any) -> DetectorEngine:
    return DetectorEngine(DetectorConfig.from_dict({"tool_failure_spike": {**SPIKE, **changes}}))


def spikes(engine: DetectorEngine) -> list[Finding]:
    return [f for f in engine.take_findings() if f.kind == "tool_failure_spike"]


def every(n: int, of: int) -> Callable[[int], bool]:
    """Calls number i fail when i % of < n: n failures in every `of` calls."""
    return lambda i: i % of < n


def traffic(
    engine: DetectorEngine,
    start_s: int,
    end_s: int,
    fails: Callable[[int], bool],
    agent: str = "support-agent",
    tool: str = "crm.lookup",
    **fields: Any,
) -> list[Finding]:
    """CALLS_PER_S calls a second, fed a second at a time; every finding version seen."""
    seen: list[Finding] = []
    for second in range(start_s, end_s):
        batch: list[AgentSpan] = []
        for k in range(CALLS_PER_S):
            i = second * CALLS_PER_S + k
            failed = fails(i)
            batch.append(
                tool_call(
                    f"{i:016x}",
                    second,
                    second + 0.4,
                    tool=tool,
                    agent_name=agent,
                    trace_id=f"{i:032x}",
                    is_error=failed and not fields.get("flag_only", False),
                    error_type="Timeout" if failed and not fields.get("flag_only") else "",
                    attributes={"tool.result.success": "false" if failed else "true"}
                    if fields.get("flag_only")
                    else {},
                )
            )
        engine.consume(batch)
        engine.tick(at(second + 1))
        seen += spikes(engine)
    return seen


def test_a_tool_jumping_from_5_to_40_percent_fails_is_found_and_resolves() -> None:
    engine = new_engine()
    assert traffic(engine, 0, 600, every(1, 20)) == []  # ten minutes at 5%: the baseline

    during = traffic(engine, 600, 700, every(2, 5))  # 40%

    opened = during[0]
    assert opened.state == "open"
    assert (opened.tool_name, opened.agent_name) == ("crm.lookup", "support-agent")
    assert opened.opened_at_ns - at(600) <= 60 * 10**9  # within a minute of the jump
    evidence = opened.evidence
    assert 0.03 <= evidence["baseline_rate"] <= 0.07
    assert evidence["short_rate"] >= evidence["threshold_rate"]
    assert abs(evidence["threshold_rate"] - 4 * evidence["baseline_rate"]) < 0.001
    assert evidence["short_calls"] >= 10
    assert evidence["p_value"] <= 0.001
    assert evidence["top_error_types"][0]["error_type"] == "Timeout"
    assert len(evidence["example_trace_ids"]) == 5
    assert "crm.lookup (support-agent) failing" in opened.summary
    assert all(f.id == opened.id for f in during)  # one finding for the incident

    after = traffic(engine, 700, 800, every(1, 20))  # back to 5%

    resolved = [f for f in after if f.state == "resolved"]
    assert [f.id for f in resolved] == [opened.id]
    assert resolved[0].resolved_at_ns - at(700) <= 30 * 10**9
    json.dumps(resolved[0].evidence)  # plain data, storable as it is


def test_a_steady_ten_percent_failure_rate_is_not_a_spike() -> None:
    engine = new_engine()
    assert traffic(engine, 0, 3600, every(1, 10)) == []


def test_a_new_tool_failing_at_ten_percent_is_not_a_spike_from_its_prior() -> None:
    assert traffic(new_engine(), 0, 600, every(1, 10)) == []


def test_ten_calls_with_two_failures_do_not_page() -> None:
    # Every window passes its rate threshold (20% = 4 x the 5% prior) with min_calls
    # met; only the binomial test stands between two failures in ten and a page.
    engine = new_engine(min_calls=10, prior_calls=1000)
    seen = []
    for i in range(40):  # one call every 1.5 s: ten in the 15 s window
        start = 1.5 * i
        span = tool_call(f"{i:016x}", start, start + 0.5, is_error=i % 10 < 2)
        engine.consume([span])
        engine.tick(at(start + 1))
        seen += spikes(engine)
    assert seen == []

    strict = new_engine(min_calls=10, prior_calls=1000, max_p_value=0.2)  # without it
    for i in range(40):
        start = 1.5 * i
        strict.consume([tool_call(f"{i:016x}", start, start + 0.5, is_error=i % 10 < 2)])
        strict.tick(at(start + 1))
    assert spikes(strict)


def test_failures_reported_inside_a_successful_result_count() -> None:
    engine = new_engine()
    traffic(engine, 0, 600, every(1, 20), flag_only=True)

    during = traffic(engine, 600, 700, every(2, 5), flag_only=True)

    assert during
    assert during[0].evidence["top_error_types"][0]["error_type"] == "tool.result.success=false"


def test_low_volume_agents_failing_together_give_one_finding_across_agents() -> None:
    engine = new_engine(min_calls=10)
    for agent in ("a1", "a2", "a3", "a4"):
        engine.consume(
            [
                tool_call(f"{agent}{n:014x}", s, s + 1, agent_name=agent, trace_id=f"{n:032x}")
                for n, s in enumerate(range(0, 600, 20))
            ]
        )
    engine.tick(at(600))
    spikes(engine)
    seen = []
    for second in range(600, 660):  # every agent: one failing call every 4 s
        agent = f"a{second % 4 + 1}"
        span = tool_call(f"f{second:015x}", second, second + 0.5, agent_name=agent, is_error=True)
        engine.consume([span])
        engine.tick(at(second + 1))
        seen += spikes(engine)

    assert {f.agent_name for f in seen} == {""}  # across agents: no agent alone qualifies
    assert seen[0].summary.startswith("search (all agents)")


def test_an_agents_own_finding_makes_the_across_agents_one_redundant() -> None:
    engine = new_engine()
    traffic(engine, 0, 600, every(1, 20))
    seen = traffic(engine, 600, 700, every(2, 5))
    assert {f.agent_name for f in seen} == {"support-agent"}


def test_a_configured_baseline_replaces_the_learnt_one() -> None:
    engine = new_engine(baseline_rate=0.01)
    seen = traffic(engine, 0, 300, every(1, 5))  # 20% against a 1% error budget
    assert seen
    assert seen[0].evidence["baseline_rate"] == 0.01
    assert seen[0].evidence["baseline_source"] == "configured"


def test_state_survives_a_snapshot_round_trip() -> None:
    engine = new_engine()
    traffic(engine, 0, 600, every(1, 20))
    opened = traffic(engine, 600, 640, every(2, 5))[0]

    restored = new_engine()
    restored.restore(json.loads(json.dumps(engine.snapshot())))
    after = traffic(restored, 640, 800, every(1, 20))

    assert [f.id for f in after if f.state == "resolved"] == [opened.id]
    assert not [f for f in after if f.state == "open" and f.id != opened.id]


def test_the_running_window_sums_equal_a_rescan_of_the_buckets() -> None:
    """Calls counted in order, late and very late (older than every window), time
    moving in steps and in jumps past the longest window: after every feed and tick,
    each series' running (calls, failures) per window are those of a full rescan."""
    rng = random.Random(7)
    windows = [
        {"long": "60s", "short": "15s", "burn_rate": 4},
        {"long": "240s", "short": "45s", "burn_rate": 2, "severity": "warning"},
    ]
    engine = new_engine(windows=windows)
    detector = next(d for d in engine.detectors if isinstance(d, ToolFailureSpikeDetector))
    now_s = 0.0
    checked = 0
    for n in range(3000):
        now_s += rng.choice([0.0, 0.3, 1.0, 2.5, 7.0]) if rng.random() > 0.01 else 400.0
        late_s = rng.choice([0.0, 0.0, 0.0, 5.0, 30.0, 100.0, 500.0]) * rng.random()
        end_s = max(0.0, now_s - late_s)
        engine.consume(
            [
                tool_call(
                    f"{n:016x}",
                    end_s - 0.2,
                    end_s,
                    agent_name=rng.choice(["a1", "a2"]),
                    tool=rng.choice(["search", "crm.lookup"]),
                    is_error=rng.random() < 0.3,
                )
            ]
        )
        if rng.random() < 0.2:
            engine.tick(at(now_s + rng.random() * 3))
        if n == 1500:  # the sums are not saved: rebuilt from the buckets after a restore
            restored = new_engine(windows=windows)
            restored.restore(json.loads(json.dumps(engine.snapshot())))
            engine = restored
            detector = next(d for d in engine.detectors if isinstance(d, ToolFailureSpikeDetector))
        for series in detector._series.values():
            sums = series.sums
            if sums is not None:
                assert (sums.calls, sums.failures) == _rescan(series.buckets, sums.widths, sums.end)
                checked += 1
    assert checked > 5000

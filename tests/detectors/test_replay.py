"""The detectors replayed on event time over a simulated fleet's traffic.

`tests/detectors/traffic.py` generates a day of traffic from four agents (with and
without agentwatch_sdk's pending markers and heartbeats) as an OTLP exporter delivers
it; `replay` feeds it to a `DetectorEngine` with the default config, ticking it every
second of event time. Healthy traffic must raise nothing; each injected incident must
be found — by the right detector, for the right trace, in time — and nothing else.
"""

from __future__ import annotations

import itertools
import multiprocessing
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor

import pytest

from detectors import DetectorConfig, Finding
from ingest import AgentSpan
from tests.detectors.traffic import (
    EXPORT_INTERVAL_NS,
    FLEET,
    HEARTBEAT_INTERVAL_NS,
    NS,
    Incident,
    InjectedRun,
    Replay,
    Traffic,
    generate,
    replay,
)

SEED = 20260101
HOURS = 24
H = 3600.0
DEFAULTS = DetectorConfig.from_dict(None).defaults
# A finding about a loop is opened when the request carrying the looping step arrives:
# at most one export interval after the step ended (plus its delivery latency).
DELIVERY_SLACK_NS = EXPORT_INTERVAL_NS + NS
# A zombie is reported by the first tick (every second) past its threshold.
TICK_SLACK_NS = 2 * NS
ZOMBIE_WINDOW_NS = 15 * 60 * NS  # zombies are found well within this after they stall

INCIDENTS = (
    Incident("step_budget", 3.0 * H, "research-agent", repeats=330),
    Incident("zombie_tool", 9.5 * H, "support-agent"),  # never ends
    Incident("repeated_call", 10.0 * H, "support-agent", repeats=6),
    Incident("zombie_heartbeats", 11.0 * H, "billing-agent"),  # never ends
    Incident("zombie_tool", 13.2 * H, "support-agent", hang_s=600),
    Incident("cycle", 14.0 * H, "research-agent", repeats=4),
    Incident("zombie_tool", 15.3 * H, "support-agent", hang_s=300, give_up=True),
    Incident("zombie_tool", 16.1 * H, "research-agent", hang_s=900),
    Incident("zombie_heartbeats", 20.0 * H, "billing-agent", hang_s=420),
)


def _replay_incidents() -> tuple[Traffic, Replay]:
    """The day with incidents, generated and replayed (in a process of its own)."""
    traffic = generate(HOURS, seed=SEED, incidents=INCIDENTS)
    # zombie_run's threshold while each zombie hangs, under the names the detector may
    # know its agent by: the agent's own, or (before its agent span) the service's.
    watch = [
        (name, run.stalled_at_ns, run.stalled_at_ns + ZOMBIE_WINDOW_NS)
        for run in traffic.injected
        if run.stalled_at_ns
        for name in (run.incident.agent_name, run.service_name)
    ]
    return traffic, replay(traffic, watch=watch)


@pytest.fixture(scope="module")
def _incidents_replaying() -> Iterator[Future[tuple[Traffic, Replay]]]:
    """The day with incidents, replayed in another process while this one replays the
    healthy day: the two replays are independent and each takes a core for ~25 s."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        yield pool.submit(_replay_incidents)


@pytest.fixture(scope="module")
def healthy(
    _incidents_replaying: Future[tuple[Traffic, Replay]],  # started first, to run alongside
) -> tuple[Traffic, Replay]:
    traffic = generate(HOURS, seed=SEED)
    return traffic, replay(traffic)


@pytest.fixture(scope="module")
def incidents(_incidents_replaying: Future[tuple[Traffic, Replay]]) -> tuple[Traffic, Replay]:
    return _incidents_replaying.result()


def _describe(findings: list[Finding]) -> str:
    return "\n".join(f"{f.kind} {f.trace_id} {f.summary}" for f in findings)


def _finding_of(result: Replay, injected: InjectedRun) -> Finding:
    found = [f for f in result.findings if f.trace_id == injected.trace_id]
    assert len(found) == 1, _describe(found)
    return found[0]


def _assert_zombie_found_past_its_threshold(
    result: Replay, finding: Finding, run: InjectedRun
) -> None:
    """Opened by the first tick at which the run had been idle for the threshold then."""
    assert finding.kind == "zombie_run"
    timeline = result.thresholds[finding.agent_name]
    due_ns = next(
        at_ns
        for at_ns, threshold_s in timeline
        if at_ns >= run.stalled_at_ns and at_ns - run.stalled_at_ns >= threshold_s * NS
    )
    assert due_ns <= finding.opened_at_ns <= due_ns + TICK_SLACK_NS
    idle_ns = finding.opened_at_ns - run.stalled_at_ns
    assert finding.evidence["threshold_s"] * NS <= idle_ns
    # The threshold is the agent's own rhythm, and a few minutes at most here.
    assert all(threshold_s <= 6 * 60 for at_ns, threshold_s in timeline)
    assert finding.evidence["stuck_span_id"] == run.stuck_span_id
    assert finding.evidence["process"]["still_exporting"] is True


def _injected(traffic: Traffic, kind: str) -> list[InjectedRun]:
    return [run for run in traffic.injected if run.incident.kind == kind]


# -- the traffic itself --------------------------------------------------------------


def test_traffic_is_delivered_as_an_exporter_sends_it() -> None:
    traffic = generate(2, seed=SEED)
    delivered = [batch.delivered_ns for batch in traffic.batches]
    assert delivered == sorted(delivered)
    request_of: dict[str, int] = {}  # span id -> the request that delivered it
    first_step: dict[str, int] = {}  # trace id -> the request of its first step
    root_request: dict[str, int] = {}  # trace id -> the request of its agent span
    heartbeats: dict[str, list[int]] = {}
    pending: list[tuple[str, str]] = []  # (marker, the span it announces)
    for index, batch in enumerate(traffic.batches):
        assert len({span.service_instance_id for span in batch.spans}) == 1  # one process
        for span in batch.spans:
            # Sent when it ends, at the process's next flush.
            assert span.end_ns < batch.delivered_ns <= span.end_ns + DELIVERY_SLACK_NS
            request_of[span.span_id] = index
            if span.marker == "heartbeat":
                heartbeats.setdefault(span.trace_id, []).append(span.start_ns)
            elif span.marker == "pending":
                pending.append((span.span_id, span.pending_span_id))
            elif span.operation == "invoke_agent":
                root_request[span.trace_id] = index
            elif span.operation:
                first_step.setdefault(span.trace_id, index)
    # A start is announced before (or with) the span's end.
    assert pending
    assert all(request_of[marker] <= request_of.get(span, 1 << 62) for marker, span in pending)
    # A run's steps mostly arrive before its agent span.
    earlier = [first_step[trace] < root_request[trace] for trace in first_step]
    assert sum(earlier) > len(earlier) / 2
    assert all(first_step[trace] <= root_request[trace] for trace in first_step)
    # Heartbeats are rate-limited per run.
    for beats in heartbeats.values():
        assert all(b - a >= HEARTBEAT_INTERVAL_NS for a, b in itertools.pairwise(beats))


def test_traffic_is_deterministic_and_incidents_leave_the_healthy_runs_unchanged() -> None:
    first = generate(1, seed=SEED)
    again = generate(1, seed=SEED)
    assert first.batches == again.batches
    with_incident = generate(1, seed=SEED, incidents=[Incident("cycle", 600, "research-agent")])

    def key(span: AgentSpan) -> tuple[object, ...]:
        # Every field but the attributes dict (unhashable).
        return tuple(
            v for name, v in zip(AgentSpan._fields, span, strict=True) if name != "attributes"
        )

    healthy = {key(s): batch.delivered_ns for batch in first.batches for s in batch.spans}
    spans = {key(s): batch.delivered_ns for batch in with_incident.batches for s in batch.spans}
    assert all(spans.get(span) == delivered for span, delivered in healthy.items())
    trace_id_at = AgentSpan._fields.index("trace_id")
    extra = {span[trace_id_at] for span in spans.keys() - healthy.keys()}
    assert extra == {with_incident.injected[0].trace_id}


# -- healthy traffic -----------------------------------------------------------------


def test_a_day_of_healthy_fleet_traffic_raises_no_finding(
    healthy: tuple[Traffic, Replay],
) -> None:
    traffic, result = healthy
    print(
        f"\n{HOURS} h of traffic: {traffic.runs} runs {traffic.runs_by_agent}, "
        f"{traffic.spans} spans in {len(traffic.batches)} requests, "
        f"{traffic.slow_llm_calls} LLM calls of 20-90 s, "
        f"longest run {traffic.max_steps_per_run} steps, "
        f"most tokens {traffic.max_tokens_per_run}; {result.ticks} ticks"
    )
    assert traffic.end_ns - traffic.start_ns >= HOURS * 3600 * NS
    assert traffic.runs > 1_000
    assert traffic.spans > 100_000
    assert set(traffic.runs_by_agent) == {agent.agent_name for agent in FLEET}
    assert min(traffic.runs_by_agent.values()) > 100
    assert traffic.slow_llm_calls > 100
    assert traffic.max_steps_per_run > 200  # long runs, but within the agents' budget
    assert traffic.max_steps_per_run <= DEFAULTS.runaway_loop.max_steps
    assert traffic.max_tokens_per_run <= DEFAULTS.runaway_loop.max_tokens
    assert result.findings == [], _describe(result.findings)


# -- injected incidents --------------------------------------------------------------


def test_every_injected_incident_is_found_once_and_nothing_else(
    incidents: tuple[Traffic, Replay],
) -> None:
    traffic, result = incidents
    expected = {
        "zombie_tool": "zombie_run",
        "zombie_heartbeats": "zombie_run",
        "repeated_call": "runaway_loop",
        "cycle": "runaway_loop",
        "step_budget": "runaway_loop",
    }
    wanted = Counter((expected[run.incident.kind], run.trace_id) for run in traffic.injected)
    found = Counter((finding.kind, finding.trace_id) for finding in result.findings)
    assert found == wanted, _describe(result.findings)


def _assert_zombie_resolved_as_expected(finding: Finding, run: InjectedRun) -> None:
    if not run.resumed_at_ns:  # the step never ends: the finding stays open, and escalates
        assert finding.state == "open"
        assert finding.severity == "critical"  # silent for hours
    elif run.incident.give_up:  # the step timed out and the run ended with it
        assert finding.evidence["resolution"] in ("activity resumed", "run ended")
        assert run.resumed_at_ns <= finding.resolved_at_ns <= run.ended_ns + NS
    else:  # the step timed out and the run went on for a while
        assert finding.evidence["resolution"] == "activity resumed"
        assert finding.resolved_at_ns == run.resumed_at_ns


@pytest.mark.parametrize("agent", ["support-agent", "research-agent"])
def test_a_tool_call_that_hangs_after_its_pending_marker_is_a_zombie_past_its_threshold(
    incidents: tuple[Traffic, Replay], agent: str
) -> None:
    traffic, result = incidents
    runs = [run for run in _injected(traffic, "zombie_tool") if run.incident.agent_name == agent]
    assert runs
    for run in runs:
        finding = _finding_of(result, run)
        _assert_zombie_found_past_its_threshold(result, finding, run)
        assert finding.agent_name == agent  # from the agent span's pending marker
        assert finding.run_id == run.run_id
        assert "execute_tool" in finding.summary
        _assert_zombie_resolved_as_expected(finding, run)


def test_heartbeats_that_stop_make_a_run_without_pending_markers_a_zombie(
    incidents: tuple[Traffic, Replay],
) -> None:
    traffic, result = incidents
    runs = _injected(traffic, "zombie_heartbeats")
    assert len(runs) == 2
    for run in runs:
        finding = _finding_of(result, run)
        _assert_zombie_found_past_its_threshold(result, finding, run)  # stuck: the LLM call
        assert finding.evidence["heartbeats"]["seen"] is True
        assert "heartbeats from inside the loop stopped" in finding.summary
        _assert_zombie_resolved_as_expected(finding, run)


def _assert_loop_found_while_running(finding: Finding, run: InjectedRun) -> None:
    assert finding.kind == "runaway_loop"
    assert run.detectable_at_ns <= finding.opened_at_ns <= run.detectable_at_ns + DELIVERY_SLACK_NS
    assert finding.opened_at_ns < run.ended_ns  # while the run was still going
    assert run.ended_ns <= finding.resolved_at_ns <= run.ended_ns + NS
    assert finding.evidence["resolution"] == "run ended"


def test_the_same_tool_call_repeated_is_a_runaway_loop_found_while_the_run_goes_on(
    incidents: tuple[Traffic, Replay],
) -> None:
    traffic, result = incidents
    (run,) = _injected(traffic, "repeated_call")
    finding = _finding_of(result, run)
    _assert_loop_found_while_running(finding, run)
    assert finding.evidence["reason"] == "repeated_call"
    assert finding.tool_name == "tickets.search"
    assert finding.evidence["count"] >= DEFAULTS.runaway_loop.max_repeats


def test_a_cycle_of_two_tool_calls_is_a_runaway_loop_named_as_a_cycle(
    incidents: tuple[Traffic, Replay],
) -> None:
    traffic, result = incidents
    (run,) = _injected(traffic, "cycle")
    finding = _finding_of(result, run)
    _assert_loop_found_while_running(finding, run)
    assert finding.evidence["reason"] == "cycle"
    assert finding.evidence["sequence"] in (
        ["web.search", "web.fetch"],
        ["web.fetch", "web.search"],
    )


def test_a_run_past_its_step_budget_is_a_runaway_loop_found_while_the_run_goes_on(
    incidents: tuple[Traffic, Replay],
) -> None:
    traffic, result = incidents
    (run,) = _injected(traffic, "step_budget")
    finding = _finding_of(result, run)
    _assert_loop_found_while_running(finding, run)
    assert finding.evidence["reason"] == "step_budget"
    assert finding.evidence["steps"] > DEFAULTS.runaway_loop.max_steps


def test_per_agent_overrides_apply_to_a_loop_before_its_agent_span_arrives() -> None:
    loop = Incident("repeated_call", 1200, "support-agent", repeats=6)
    traffic = generate(1, seed=SEED, incidents=[loop])
    lenient = {"overrides": {"support-agent": {"runaway_loop": {"max_repeats": 10}}}}
    result = replay(traffic, lenient)
    assert result.findings == [], _describe(result.findings)


def test_a_loop_in_an_agent_called_from_another_system_resolves_when_its_run_ends() -> None:
    loop = Incident("repeated_call", 1200, "billing-agent", repeats=6)  # a remote caller
    traffic = generate(1, seed=SEED, incidents=[loop])
    result = replay(traffic)
    (run,) = traffic.injected
    finding = _finding_of(result, run)
    _assert_loop_found_while_running(finding, run)

"""zombie_run: an open agent run with no activity for longer than its idle threshold.

Spans are built directly (tests/detectors/spans.py) and fed to a `DetectorEngine`;
time moves only when a test ticks the engine with an event time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from detectors import DetectorConfig, DetectorEngine, Finding
from detectors._zombie import ZombieRunDetector
from ingest import AgentSpan
from tests.detectors.spans import (
    AGENT,
    INSTANCE,
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

TOOL = "1a2b3c4d5e6f7081"  # the tool call that hangs
LLM = "2000000000000001"
LOOP = "3c3c3c3c3c3c3c3c"  # the agent's loop span (no pending marker): heartbeats' parent
OTHER_TRACE = "99999999999999999999999999999999"


# The thresholds these tests are written against (not left to the defaults, which may be
# tuned): 60 s idle until 20 gaps are learnt, then 4 x their 0.99 quantile; critical
# from 6 x the threshold.
ZOMBIE = {
    "min_idle": "60s",
    "idle_multiplier": 4,
    "idle_quantile": 0.99,
    "min_gap_samples": 20,
    "critical_after": 6,
}


def new_engine(
    zombie: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> DetectorEngine:
    section = {"zombie_run": {**ZOMBIE, **(zombie or {})}, "overrides": overrides or {}}
    return DetectorEngine(DetectorConfig.from_dict(section))


def zombies(engine: DetectorEngine) -> list[Finding]:
    """The zombie_run finding versions published since the last call."""
    return [finding for finding in engine.take_findings() if finding.kind == "zombie_run"]


def only(findings: list[Finding]) -> Finding:
    assert len(findings) == 1, [finding.summary for finding in findings]
    return findings[0]


def stuck_in_tool(trace: str = TRACE, agent: str = AGENT) -> list[AgentSpan]:
    """A run that started (pending agent span), called the LLM, then started a tool at
    t=4 s that never ends: its last activity is the tool's pending marker at t=4 s."""
    common: dict[str, Any] = {"trace_id": trace, "agent_name": agent}
    return [
        pending(ROOT, 0, **common),
        llm_call(LLM, 1, 3, **common),
        pending(TOOL, 4, operation="execute_tool", tool="search", parent=ROOT, **common),
    ]


def open_zombie(engine: DetectorEngine) -> Finding:
    """Feed `stuck_in_tool` and tick just past the default 60 s threshold."""
    engine.consume(stuck_in_tool())
    engine.tick(at(64))
    return only(zombies(engine))


# -- opening -----------------------------------------------------------------------------


def test_zombie_opens_after_idle_threshold_naming_the_stuck_tool() -> None:
    engine = new_engine()

    finding = open_zombie(engine)

    assert finding.kind == "zombie_run"
    assert finding.state == "open"
    assert finding.severity == "error"
    assert finding.opened_at_ns == at(64)
    assert (finding.tenant, finding.trace_id, finding.run_id) == (TENANT, TRACE, RUN)
    assert (finding.agent_name, finding.service_name) == (AGENT, SERVICE)
    assert finding.tool_name == "search"
    assert finding.summary.startswith(f"{AGENT}: run {RUN} stuck in execute_tool search ")
    assert f"(span {TOOL})" in finding.summary
    assert "no activity for 1m00s" in finding.summary
    evidence = finding.evidence
    assert evidence["stuck_span_id"] == TOOL
    assert evidence["idle_s"] == 60.0
    assert evidence["threshold_s"] == 60.0
    assert evidence["last_activity_at"] == "2023-11-14T22:13:24.000Z"  # T0 + 4 s
    open_spans = {entry["span_id"]: entry for entry in evidence["open_spans"]}
    assert set(open_spans) == {TOOL, ROOT}
    assert open_spans[TOOL]["operation"] == "execute_tool"
    assert open_spans[TOOL]["tool_name"] == "search"
    assert open_spans[TOOL]["announced"] is True
    assert open_spans[TOOL]["running_s"] == 60.0
    assert open_spans[ROOT]["operation"] == "invoke_agent"
    assert evidence["heartbeats"] == {"seen": False, "last_at": None}


@pytest.mark.parametrize("now_s", [4, 30, 63.999])
def test_zombie_not_opened_before_the_idle_threshold(now_s: float) -> None:
    engine = new_engine()
    engine.consume(stuck_in_tool())

    engine.tick(at(now_s))

    assert zombies(engine) == []


def test_run_announced_only_by_pending_markers_is_watched() -> None:
    # No span of the run has ended yet: the markers alone say it is an agent run.
    engine = new_engine()
    engine.consume([stuck_in_tool()[0], stuck_in_tool()[2]])

    engine.tick(at(64))

    assert only(zombies(engine)).evidence["stuck_span_id"] == TOOL


# -- resolution --------------------------------------------------------------------------


def test_zombie_resolves_as_activity_resumed_when_the_stuck_span_ends() -> None:
    engine = new_engine()
    opened = open_zombie(engine)

    engine.consume([tool_call(TOOL, 4, 90)])

    resolved = only(zombies(engine))
    assert resolved.id == opened.id
    assert resolved.state == "resolved"
    assert resolved.resolved_at_ns == at(90)
    assert resolved.version == opened.version + 1
    assert resolved.evidence["resolution"] == "activity resumed"
    assert resolved.evidence["stuck_span_id"] == TOOL  # the opening evidence is kept


def test_zombie_between_steps_resolves_as_run_ended_when_the_agent_span_ends() -> None:
    # The last step ended at t=3 s; the agent then hangs in its own code, and its
    # invoke_agent span finally ends at t=200 s (e.g. a timeout): the run is over.
    engine = new_engine()
    engine.consume([pending(ROOT, 0), llm_call(LLM, 1, 3)])
    engine.tick(at(63))
    opened = only(zombies(engine))
    assert opened.evidence["stuck_span_id"] == ROOT

    engine.consume([agent_root(0, 200)])

    resolved = only(zombies(engine))
    assert resolved.id == opened.id
    assert resolved.state == "resolved"
    assert resolved.evidence["resolution"] == "run ended"
    assert resolved.resolved_at_ns == at(200)


@pytest.mark.parametrize("one_batch", [True, False])
def test_stuck_tool_that_ends_before_the_run_resolves_as_activity_resumed(one_batch: bool) -> None:
    # The hung call finally ends (a timeout); the agent span ends a second later. The
    # step ending is the activity that ended the stall, however the spans are batched.
    engine = new_engine()
    opened = open_zombie(engine)
    ending = [tool_call(TOOL, 4, 299, is_error=True), agent_root(0, 300)]

    for batch in [ending] if one_batch else [[one] for one in ending]:
        engine.consume(batch)

    resolved = only(zombies(engine))
    assert resolved.id == opened.id
    assert resolved.evidence["resolution"] == "activity resumed"
    assert resolved.resolved_at_ns == at(299)
    engine.tick(at(2000))
    assert zombies(engine) == []  # and the run is over


def test_resumed_run_that_stalls_again_is_a_new_incident() -> None:
    engine = new_engine()
    first = open_zombie(engine)
    engine.consume([tool_call(TOOL, 4, 90)])  # resumed; the agent span is still open
    assert only(zombies(engine)).state == "resolved"

    engine.tick(at(149))
    assert zombies(engine) == []
    engine.tick(at(150))

    second = only(zombies(engine))
    assert second.id != first.id
    assert second.state == "open"
    assert second.evidence["stuck_span_id"] == ROOT


# -- heartbeats and the process ----------------------------------------------------------


def heartbeats_until(last_s: int, trace: str = TRACE) -> list[AgentSpan]:
    """Heartbeats every 5 s from t=0 to `last_s`, from inside the loop span LOOP."""
    return [heartbeat(t, parent=LOOP, trace_id=trace) for t in range(0, last_s + 1, 5)]


def test_heartbeat_only_run_is_a_zombie_once_heartbeats_stop_while_the_process_exports() -> None:
    engine = new_engine()
    engine.consume(heartbeats_until(50))
    # The same process (service_instance_id) goes on exporting spans of other traces.
    engine.consume(
        [
            span("4000000000000001", 70, 80, trace_id=OTHER_TRACE),
            span("4000000000000002", 95, 100, trace_id=OTHER_TRACE),
        ]
    )

    engine.tick(at(109))
    assert zombies(engine) == []
    engine.tick(at(110))

    finding = only(zombies(engine))
    assert finding.trace_id == TRACE
    assert finding.evidence["stuck_span_id"] == LOOP
    assert f"(span {LOOP})" in finding.summary
    assert f"its process ({INSTANCE}) is still exporting telemetry" in finding.summary
    assert "heartbeats from inside the loop stopped" in finding.summary
    assert finding.evidence["heartbeats"] == {
        "seen": True,
        "last_at": "2023-11-14T22:14:10.000Z",  # T0 + 50 s
    }
    assert finding.evidence["process"] == {
        "service_instance_id": INSTANCE,
        "still_exporting": True,
        "last_export_at": "2023-11-14T22:15:00.000Z",  # T0 + 100 s
    }


def test_heartbeat_zombie_does_not_claim_a_live_process_when_it_went_silent() -> None:
    engine = new_engine()
    engine.consume(heartbeats_until(50))

    engine.tick(at(110))

    finding = only(zombies(engine))
    assert "still exporting" not in finding.summary
    assert "heartbeats from inside the loop stopped" in finding.summary
    assert finding.evidence["process"]["still_exporting"] is False


def test_other_processes_telemetry_does_not_count_as_the_runs_process() -> None:
    engine = new_engine()
    engine.consume(heartbeats_until(50))
    engine.consume(
        [span("4000000000000001", 95, 100, trace_id=OTHER_TRACE, service_instance_id="pod-2")]
    )

    engine.tick(at(110))

    assert "still exporting" not in only(zombies(engine)).summary


def test_steady_heartbeats_keep_a_long_step_alive() -> None:
    engine = new_engine()
    for t in range(0, 1801, 5):
        engine.consume([heartbeat(t, parent=LOOP)])
        engine.tick(at(t + 4))

    assert zombies(engine) == []


# -- what is running ----------------------------------------------------------------------


def test_a_steps_parent_is_running_until_it_arrives() -> None:
    # Only the LLM call was announced; its parent (a workflow span without agent
    # attributes, so no marker) is known to be running because the call ended.
    workflow = "3d3d3d3d3d3d3d3d"
    engine = new_engine()
    engine.consume(
        [
            pending(LLM, 1, operation="chat", parent=workflow, name="chat gpt-4o"),
            llm_call(LLM, 1, 3, parent=workflow),
        ]
    )

    engine.tick(at(63))
    opened = only(zombies(engine))
    assert opened.evidence["stuck_span_id"] == workflow
    assert opened.evidence["open_spans"][0]["announced"] is False

    engine.consume([span(workflow, 0, 70)])
    resolved = only(zombies(engine))
    assert (resolved.id, resolved.evidence["resolution"]) == (opened.id, "run ended")


def test_the_agent_spans_parent_is_outside_the_run() -> None:
    caller = "c0c0c0c0c0c0c0c0"  # e.g. an HTTP handler span of another service
    engine = new_engine()
    engine.consume(
        [
            pending(ROOT, 0, parent=caller),
            tool_call(TOOL, 1, 5),
            agent_root(0, 10, parent_span_id=caller),
        ]
    )

    engine.tick(at(500))

    assert zombies(engine) == []


# -- which traces are watched ------------------------------------------------------------


def test_traces_without_agent_evidence_never_produce_findings() -> None:
    engine = new_engine()
    unseen_parent = "5555555555555555"  # a caller's span agentwatch never receives
    engine.consume(
        [
            # A plain request trace.
            span("6000000000000001", 0, 5, trace_id="a" * 32),
            span("6000000000000002", 1, 2, trace_id="a" * 32, parent_span_id="6000000000000001"),
            # An LLM app without agent spans: an LLM call and a tool call whose parent
            # never arrives (so the parent looks still running), no marker, no heartbeat.
            llm_call("6000000000000003", 0, 2, parent=unseen_parent, trace_id="b" * 32),
            tool_call("6000000000000004", 3, 4, parent=unseen_parent, trace_id="b" * 32),
        ]
    )

    for now_s in (60, 3600, 86_400):
        engine.tick(at(now_s))

    assert zombies(engine) == []
    assert engine.snapshot()["zombie_run"]["runs"] == []  # nothing of theirs is saved


# -- thresholds --------------------------------------------------------------------------


def steady_run(trace: str, gaps: int) -> list[AgentSpan]:
    """A finished run of `planner` with activity every 30 s: exactly `gaps` gaps."""
    return [
        pending(ROOT, 0, trace_id=trace),
        *(
            tool_call(
                f"70000000000000{k:02x}", 30 * k - 1, 30 * k, args_hash=f"h{k}", trace_id=trace
            )
            for k in range(1, gaps)
        ),
        agent_root(0, 30 * gaps, trace_id=trace),
    ]


def paused_run(trace: str, agent: str = AGENT) -> list[AgentSpan]:
    """A run that starts a tool at t=1010 s, then pauses (no gap of its own to learn)."""
    common: dict[str, Any] = {"trace_id": trace, "agent_name": agent}
    return [
        pending(ROOT, 1010, **common),
        pending(TOOL, 1010, operation="execute_tool", tool="search", parent=ROOT, **common),
    ]


@pytest.mark.parametrize(("gaps", "learnt"), [(19, False), (20, True), (40, True)])
def test_adaptive_threshold_follows_the_agents_own_gaps(gaps: int, learnt: bool) -> None:
    # After min_gap_samples (20) gaps of 30 s the threshold is 4 x 30 s = 120 s, so a
    # 60 s pause is normal for this agent; with fewer samples it stays min_idle (60 s).
    engine = new_engine()
    engine.consume(steady_run("c" * 32, gaps))
    engine.consume(paused_run("d" * 32))

    engine.tick(at(1070))  # a 60 s pause

    if not learnt:
        assert only(zombies(engine)).evidence["threshold_s"] == 60.0
        return
    assert zombies(engine) == []
    engine.tick(at(1129))
    assert zombies(engine) == []
    engine.tick(at(1310))  # a 5 min pause
    finding = only(zombies(engine))
    assert finding.trace_id == "d" * 32
    assert finding.evidence["threshold_s"] == 120.0


def test_adaptive_threshold_is_per_agent() -> None:
    engine = new_engine()
    engine.consume(steady_run("c" * 32, 25))  # planner learns 30 s gaps

    engine.consume(paused_run("d" * 32, agent="other-agent"))
    engine.tick(at(1070))

    finding = only(zombies(engine))
    assert finding.agent_name == "other-agent"
    assert finding.evidence["threshold_s"] == 60.0


def test_gaps_that_were_incidents_are_not_learnt() -> None:
    # 25 steady gaps of 30 s and one of 630 s (a stall past the 120 s threshold):
    # learning it would lift the threshold to 4 x 630 s.
    trace = "c" * 32
    engine = new_engine()
    engine.consume(steady_run(trace, 25)[:-1])
    engine.consume([tool_call("7100000000000001", 1340, 1350, args_hash="late", trace_id=trace)])
    engine.consume([agent_root(0, 1380, trace_id=trace)])
    engine.take_findings()

    engine.consume(paused_run("d" * 32))
    engine.tick(at(1010 + 300))

    assert only(zombies(engine)).evidence["threshold_s"] == 120.0


def test_fixed_idle_replaces_the_adaptive_threshold() -> None:
    engine = new_engine({"idle": "10m"})
    engine.consume(stuck_in_tool())

    engine.tick(at(4 + 300))
    assert zombies(engine) == []
    engine.tick(at(4 + 600))

    assert only(zombies(engine)).evidence["threshold_s"] == 600.0


def test_fixed_idle_ignores_learnt_gaps() -> None:
    engine = new_engine({"idle": "45s"})
    engine.consume(steady_run("c" * 32, 30))
    engine.consume(paused_run("d" * 32))

    engine.tick(at(1055))

    assert only(zombies(engine)).evidence["threshold_s"] == 45.0


def test_per_agent_override_changes_only_that_agents_threshold() -> None:
    engine = new_engine(overrides={"batch-agent": {"zombie_run": {"min_idle": "30m"}}})
    engine.consume(stuck_in_tool(trace="e" * 32, agent=AGENT))
    engine.consume(stuck_in_tool(trace="f" * 32, agent="batch-agent"))

    engine.tick(at(4 + 600))
    assert [finding.agent_name for finding in zombies(engine)] == [AGENT]
    engine.tick(at(4 + 1800))

    finding = only([f for f in zombies(engine) if f.agent_name == "batch-agent"])
    assert finding.trace_id == "f" * 32
    assert finding.evidence["threshold_s"] == 1800.0


@pytest.mark.parametrize("for_the_agent_only", [False, True])
def test_disabled_detector_reports_nothing(for_the_agent_only: bool) -> None:
    off = {"enabled": False}
    if for_the_agent_only:
        engine = new_engine(overrides={AGENT: {"zombie_run": off}})
    else:
        engine = new_engine(off)
    engine.consume(stuck_in_tool())
    engine.consume(heartbeats_until(50, trace="a" * 32))

    for now_s in (64, 3600, 86_400):
        engine.tick(at(now_s))

    assert zombies(engine) == []


# -- lifecycle ---------------------------------------------------------------------------


def test_zombie_escalates_to_critical_after_critical_after_thresholds() -> None:
    engine = new_engine()  # threshold 60 s, critical_after 6: critical from 360 s idle
    opened = open_zombie(engine)

    engine.tick(at(4 + 359))
    assert zombies(engine) == []
    engine.tick(at(4 + 360))

    critical = only(zombies(engine))
    assert critical.id == opened.id
    assert critical.severity == "critical"
    assert critical.version == 2
    assert critical.state == "open"
    assert critical.opened_at_ns == opened.opened_at_ns
    assert critical.updated_at_ns == at(364)
    assert critical.evidence["idle_s"] == 360.0
    assert "no activity for 6m00s" in critical.summary  # the summary says how long now
    engine.tick(at(4 + 3600))
    assert zombies(engine) == []


def test_one_finding_per_incident_however_often_ticked() -> None:
    engine = new_engine()
    engine.consume(stuck_in_tool())

    published: list[Finding] = []
    for now_s in range(64, 300, 7):
        engine.tick(at(now_s))
        published += zombies(engine)

    assert len(published) == 1
    assert published[0].version == 1


def test_heartbeat_after_a_stall_resolves_the_zombie() -> None:
    engine = new_engine()
    engine.consume(heartbeats_until(50))
    engine.tick(at(110))
    opened = only(zombies(engine))

    engine.consume([heartbeat(130, parent=LOOP)])

    resolved = only(zombies(engine))
    assert (resolved.id, resolved.state) == (opened.id, "resolved")
    assert resolved.evidence["resolution"] == "activity resumed"
    assert resolved.evidence["resumed_at"] == "2023-11-14T22:15:30.000Z"  # T0 + 130 s


def test_zombie_silent_past_forget_after_resolves_as_expired() -> None:
    engine = new_engine({"forget_after": "1h"})
    opened = open_zombie(engine)

    engine.tick(at(4 + 3600))

    expired = only(zombies(engine))
    assert (expired.id, expired.state) == (opened.id, "resolved")
    assert expired.evidence["resolution"] == "expired"
    assert engine.snapshot()["zombie_run"]["runs"] == []  # forgotten
    engine.tick(at(4 + 7200))
    assert zombies(engine) == []


def test_late_spans_of_a_finished_run_do_not_reopen_it() -> None:
    engine = new_engine()
    engine.consume(
        [pending(ROOT, 0), llm_call(LLM, 1, 3), tool_call(TOOL, 4, 8), agent_root(0, 10)]
    )
    late = [
        agent_root(0, 10),  # the same span again (an exporter retry)
        llm_call("2000000000000002", 5, 9, parent="5555555555555555"),  # parent never seen
        heartbeat(9, parent=LOOP),
    ]
    engine.consume(late)

    for now_s in (100, 300, 590):
        engine.tick(at(now_s))

    assert zombies(engine) == []


def test_late_spans_after_a_zombie_ended_do_not_reopen_it() -> None:
    engine = new_engine()
    open_zombie(engine)
    engine.consume([tool_call(TOOL, 4, 199, is_error=True), agent_root(0, 200)])
    assert only(zombies(engine)).state == "resolved"

    engine.consume([llm_call("2000000000000002", 5, 150, parent="5555555555555555")])
    for now_s in (300, 600, 790):
        engine.tick(at(now_s))

    assert zombies(engine) == []


def round_trip(engine: DetectorEngine) -> DetectorEngine:
    """A fresh engine restored from `engine`'s state, saved and loaded as JSON."""
    state = json.loads(json.dumps(engine.snapshot()))
    restored = DetectorEngine(engine.config)
    restored.restore(state)
    return restored


def test_snapshot_restore_keeps_an_open_zombie_open_and_resolves_it_later() -> None:
    engine = new_engine()
    opened = open_zombie(engine)

    restored = round_trip(engine)

    restored.tick(at(100))
    assert zombies(restored) == []  # still the same incident: nothing new to publish
    restored.tick(at(364))
    critical = only(zombies(restored))
    assert (critical.id, critical.version, critical.severity) == (opened.id, 2, "critical")
    restored.consume([tool_call(TOOL, 4, 400)])
    resolved = only(zombies(restored))
    assert (resolved.id, resolved.version, resolved.state) == (opened.id, 3, "resolved")
    assert resolved.evidence["resolution"] == "activity resumed"


def test_snapshot_restore_does_not_reopen_a_resolved_zombie() -> None:
    engine = new_engine()
    opened = open_zombie(engine)
    engine.consume([tool_call(TOOL, 4, 90)])  # resumed; the agent span is still open
    assert only(zombies(engine)).state == "resolved"

    restored = round_trip(engine)

    restored.tick(at(100))
    restored.tick(at(149))
    assert zombies(restored) == []
    restored.tick(at(150))  # a new stall, 60 s after the resumption
    assert only(zombies(restored)).id != opened.id


def test_snapshot_restore_forgets_nothing_of_an_ended_run() -> None:
    engine = new_engine()
    open_zombie(engine)
    engine.consume([tool_call(TOOL, 4, 199), agent_root(0, 200)])
    engine.take_findings()

    restored = round_trip(engine)
    restored.consume([llm_call("2000000000000002", 5, 150, parent="5555555555555555")])
    for now_s in (300, 790):
        restored.tick(at(now_s))

    assert zombies(restored) == []


def test_restored_engine_keeps_the_learnt_threshold() -> None:
    engine = new_engine()
    engine.consume(steady_run("c" * 32, 25))

    restored = round_trip(engine)
    restored.consume(paused_run("d" * 32))
    restored.tick(at(1070))

    assert zombies(restored) == []


def test_finding_ids_are_deterministic() -> None:
    def scenario() -> list[dict[str, Any]]:
        engine = new_engine()
        engine.consume(stuck_in_tool())
        engine.consume(heartbeats_until(50, trace="a" * 32))
        published = []
        for now_s in (64, 110, 364, 500):
            engine.tick(at(now_s))
            published += [finding.as_dict() for finding in zombies(engine)]
        engine.consume([tool_call(TOOL, 4, 600)])
        published += [finding.as_dict() for finding in zombies(engine)]
        return published

    first, second = scenario(), scenario()

    assert len({finding["id"] for finding in first}) == 2
    assert first == second


def test_traces_without_agent_evidence_are_forgotten_and_cannot_evict_a_zombie() -> None:
    engine = new_engine()
    zombie = engine.detectors[0]
    assert isinstance(zombie, ZombieRunDetector)
    zombie._runs.capacity = 3  # a small memory, so crowding would show
    engine.consume([pending("ab" * 8, at_s=0, trace_id=TRACE)])
    engine.tick(at(100))
    assert [f.kind for f in zombies(engine)] == ["zombie_run"]
    for n in range(5):  # traces of steps whose (remote) parent never arrives
        step = llm_call(f"{n:016x}", 101 + 700 * n, 102 + 700 * n, parent="ff" * 8)
        engine.consume([step._replace(trace_id=f"{n:032x}")])
        engine.tick(at(700 * (n + 1)))
    assert (TENANT, TRACE) in zombie._runs


def test_slow_steps_that_succeed_are_learnt_so_they_stop_looking_like_zombies() -> None:
    engine = new_engine()  # min_idle 60 s; adapts after 20 gaps (4 x the 0.99 quantile)
    engine.consume([pending(ROOT, at_s=0)])
    opened_per_step = []
    for n in range(30):  # reasoning calls of 90 s, one after another
        start = 90 * n
        for second in range(start + 10, start + 90, 10):
            engine.tick(at(second))
        engine.consume([llm_call(f"{n + 1:016x}", start, start + 90)])
        opened_per_step.append(len(zombies(engine)))  # opened (and resolved) this step

    assert sum(opened_per_step[:5]) == 5  # cold start: min_idle, each slow step fires
    assert sum(opened_per_step[21:]) == 0  # learnt: 90 s is this agent's rhythm


def test_a_stall_that_ends_in_an_error_is_not_learnt() -> None:
    engine = new_engine()
    engine.consume([pending(ROOT, at_s=0)])
    for n in range(30):  # hung tool calls that time out after 90 s
        start = 90 * n
        engine.consume([tool_call(f"{n + 1:016x}", start, start + 90, is_error=True)])
    zombie = engine.detectors[0]
    assert isinstance(zombie, ZombieRunDetector)
    assert zombie.threshold_s(TENANT, AGENT) == 60.0


def test_finished_runs_are_forgotten_ten_minutes_after_they_close_and_a_new_turn_is_not() -> None:
    engine = new_engine()
    zombie = engine.detectors[0]
    assert isinstance(zombie, ZombieRunDetector)
    zombie._runs.capacity = 4  # evictions leave stale entries in the closing heap
    finished = [f"{n:032x}" for n in range(1, 13)]
    for n, trace in enumerate(finished):
        engine.consume([agent_root(n, n + 1, trace_id=trace)])
    assert len(zombie._closing) <= 2 * zombie._runs.capacity
    # The last run closed at 12 s, then takes a new turn at 300 s that does not end.
    last = finished[-1]
    engine.consume([pending("ab" * 8, 300, trace_id=last)])

    engine.tick(at(12 + 601))  # past the retention of every first turn

    assert list(zombie._runs) == [(TENANT, last)]
    assert list(zombie._open) == [(TENANT, last)]
    engine.tick(at(300 + 61))
    assert only(zombies(engine)).trace_id == last

"""Governance findings from job descriptions, on event time (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from detectors import DetectorConfig, DetectorCore, DetectorEngine, Finding
from detectors._jobs import JobRegistry, JobsError, load_jobs
from ingest import AgentSpan
from ingest._prices import PriceTable
from tests.detectors.spans import AGENT, SERVICE, agent_root, at, llm_call, tool_call
from tests.otlp import make_request, make_span
from tests.segments import write_segment

JOBS: list[dict[str, Any]] = [
    {
        "name": AGENT,
        "owner": "alice",
        "backup_owner": "bob",
        "allowed_tools": ["crm.lookup", "payments.*"],
        "allowed_models": ["gpt-4o*"],
        "budgets": {"steps": 5},
    }
]


def engine(jobs: list[dict[str, Any]] | None = JOBS) -> DetectorEngine:
    built = DetectorEngine(DetectorConfig.from_dict({"governance": {"settle": "10m"}}))
    built.set_jobs(None if jobs is None else JobRegistry.from_data(jobs))
    return built


def kinds(found: list[Finding]) -> list[tuple[str, str, str]]:
    governance = {"scope_violation", "unregistered_agent", "ownerless_agent", "budget_exceeded"}
    return [(f.kind, f.state, f.agent_name) for f in found if f.kind in governance]


def test_nothing_is_checked_without_job_descriptions() -> None:
    quiet = engine(None)
    quiet.consume([tool_call("a1", 1, 2, tool="rm.everything"), agent_root(0, 3)])
    quiet.tick(at(10_000))
    assert kinds(quiet.take_findings()) == []


def test_allowed_calls_pass_and_others_are_one_violation_each() -> None:
    checked = engine()
    checked.consume(
        [
            tool_call("a1", 1, 2, tool="crm.lookup"),
            tool_call("a2", 2, 3, tool="payments.refund"),
            llm_call("a3", 3, 4, model="gpt-4o-mini"),
            tool_call("a4", 4, 5, tool="admin.delete"),
            tool_call("a5", 5, 6, tool="admin.delete"),
            llm_call("a6", 6, 7, model="o3"),
            agent_root(0, 8),
        ]
    )
    found = checked.take_findings()
    violations = [f for f in found if f.kind == "scope_violation"]
    assert sorted(f.evidence["name"] for f in violations) == ["admin.delete", "o3"]
    admin = next(f for f in violations if f.evidence["name"] == "admin.delete")
    assert admin.evidence["calls"] == 2
    assert admin.evidence["allowed"] == ["crm.lookup", "payments.*"]

    checked.tick(at(6 + 599))  # the last calls ended at 6 (admin.delete) and 7 (o3)
    assert [f for f in checked.take_findings() if f.kind == "scope_violation"] == []
    checked.tick(at(7 + 600))
    assert [f.state for f in checked.take_findings() if f.kind == "scope_violation"] == [
        "resolved",
        "resolved",
    ]


def test_a_step_known_only_by_its_service_waits_for_its_agent() -> None:
    checked = engine()
    early = tool_call("a1", 1, 2, tool="admin.delete", agent_name=SERVICE)  # before the root
    checked.consume([early])
    assert kinds(checked.take_findings()) == []  # neither unregistered nor judged yet

    checked.consume([agent_root(0, 3)])

    assert kinds(checked.take_findings()) == [("scope_violation", "open", AGENT)]


def test_a_step_never_claimed_is_judged_under_its_service_after_the_wait() -> None:
    checked = engine()
    checked.consume([tool_call("a1", 1, 2, tool="x", agent_name=SERVICE)])
    checked.tick(at(2 + 299))
    assert kinds(checked.take_findings()) == []
    checked.tick(at(2 + 300))
    assert kinds(checked.take_findings()) == [("unregistered_agent", "open", SERVICE)]


def test_a_run_past_its_step_budget_is_one_finding() -> None:
    checked = engine()
    checked.consume([tool_call(f"{n:016x}", n, n + 0.5, tool="crm.lookup") for n in range(8)])
    (budget,) = [f for f in checked.take_findings() if f.kind == "budget_exceeded"]
    assert (budget.evidence["used"], budget.evidence["limit"]) == (6, 5)


# -- cost budgets ---------------------------------------------------------------------

# $10 per 1M input tokens, $30 per 1M output: a (1000, 200) call costs $0.016.
PRICES = PriceTable.load(
    default=False, overrides=[{"model": "test-model", "input": 10.0, "output": 30.0}]
)
COSTED = [{"name": AGENT, "owner": "alice", "backup_owner": "bob", "budgets": {"cost_usd": 0.05}}]


def costed_engine(jobs: list[dict[str, Any]] = COSTED) -> DetectorEngine:
    built = DetectorEngine(DetectorConfig.from_dict({"governance": {"settle": "10m"}}), PRICES)
    built.set_jobs(JobRegistry.from_data(jobs))
    return built


def priced_calls(first: int, count: int, model: str = "test-model") -> list[AgentSpan]:
    return [
        llm_call(f"{n:016x}", n, n + 0.5, tokens=(1000, 200), model=model)
        for n in range(first, first + count)
    ]


def budget_findings(found: list[Finding]) -> list[Finding]:
    return [f for f in found if f.kind == "budget_exceeded"]


def test_a_run_past_its_cost_budget_is_one_finding_that_resolves_when_quiet() -> None:
    checked = costed_engine()
    checked.consume(priced_calls(0, 3))  # $0.048: within the budget
    assert budget_findings(checked.take_findings()) == []

    checked.consume(priced_calls(3, 3))  # $0.064 at the fourth call
    (budget,) = budget_findings(checked.take_findings())
    assert budget.evidence["budget"] == "cost_usd"
    assert (budget.evidence["used"], budget.evidence["limit"]) == (0.064, 0.05)
    assert budget.evidence["unpriced_llm_calls"] == 0
    assert budget.summary == f"{AGENT}: a run used $0.06, over its budget of $0.05"
    assert budget.opened_at_ns == at(3.5)  # found at the call that passed it

    checked.consume(priced_calls(6, 4))
    assert budget_findings(checked.take_findings()) == []  # one per run
    checked.tick(at(9.5 + 600))
    (resolved,) = budget_findings(checked.take_findings())
    assert (resolved.id, resolved.state) == (budget.id, "resolved")


def test_unpriced_calls_add_nothing_to_a_cost_budget() -> None:
    checked = costed_engine([{**COSTED[0], "allowed_models": []}])
    checked.consume(priced_calls(0, 20, model="no-such-model"))
    assert budget_findings(checked.take_findings()) == []
    checked.consume(priced_calls(20, 4))
    (budget,) = budget_findings(checked.take_findings())
    assert budget.evidence["unpriced_llm_calls"] == 20


def test_the_first_budget_passed_is_the_one_reported() -> None:
    checked = costed_engine([{**COSTED[0], "budgets": {"tokens": 2500, "cost_usd": 0.05}}])
    checked.consume(priced_calls(0, 5))
    (budget,) = budget_findings(checked.take_findings())
    assert (budget.evidence["budget"], budget.evidence["used"]) == ("tokens", 3600)
    assert budget.evidence["cost_usd"] == 0.048


def test_a_snapshot_from_before_cost_budgets_restores() -> None:
    checked = costed_engine()
    checked.consume(priced_calls(0, 2))
    state = json.loads(json.dumps(checked.snapshot()))
    for row in state["governance"]["runs"]:
        del row[9:]  # the rows an older version saved: no cost, no unpriced count

    restored = costed_engine()
    restored.restore(state)
    restored.consume(priced_calls(2, 3))  # the run's cost restarts from 0: $0.048
    assert budget_findings(restored.take_findings()) == []
    restored.consume(priced_calls(5, 1))
    (budget,) = budget_findings(restored.take_findings())
    assert budget.evidence["steps"] == 6  # the steps before the restore still count


def test_the_detector_core_prices_with_the_configs_pricing(tmp_path: Path) -> None:
    """`pricing:` entries reach the detectors as plain data (as in the child process)."""
    spans = [
        make_span(
            "chat",
            trace_id=bytes.fromhex("5e" * 16),
            span_id=bytes([n + 1, 0, 0, 0, 0, 0, 0, 1]),
            parent=bytes.fromhex("00000000000000aa"),
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.agent.name": AGENT,
                "gen_ai.request.model": "house-model",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 200,
            },
        )
        for n in range(4)
    ]
    segment = write_segment(tmp_path / "1.seg", [make_request(spans)])
    pricing = [{"model": "house-model", "input": 10.0, "output": 30.0}]
    for given, expected in ((None, []), (pricing, ["cost_usd"])):
        core = DetectorCore(None, tmp_path / "state.json", pricing=given)
        core.set_jobs(COSTED)
        _, found = core.feed(str(segment), "wal-1", 1)
        assert [f["evidence"]["budget"] for f in found if f["kind"] == "budget_exceeded"] == (
            expected
        )


def test_owners_missing_then_named() -> None:
    jobs = [{"name": AGENT, "owner": "alice"}]
    checked = engine(jobs)
    checked.consume([agent_root(0, 1)])
    assert kinds(checked.take_findings()) == [("ownerless_agent", "open", AGENT)]

    checked.set_jobs(JobRegistry.from_data([{**jobs[0], "backup_owner": "bob"}]))
    checked.tick(at(5))
    assert kinds(checked.take_findings()) == [("ownerless_agent", "resolved", AGENT)]


def test_state_survives_a_snapshot_round_trip() -> None:
    checked = engine()
    checked.consume([tool_call("a1", 1, 2, tool="admin.delete"), agent_root(0, 3)])
    checked.take_findings()
    state = json.loads(json.dumps(checked.snapshot()))

    restored = engine()
    restored.restore(state)
    restored.consume([tool_call("a2", 4, 5, tool="admin.delete", trace_id="1" * 32)])

    (again,) = [f for f in restored.take_findings() if f.kind == "scope_violation"]
    assert again.evidence["calls"] == 2  # the same finding, updated


def test_job_description_files_load_and_name_their_mistakes(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("agents:\n  - {name: a, owner: x}\n  - {name: b}\n")
    (tmp_path / "c.yml").write_text("name: c\nallowed_tools: [t]\n")
    (tmp_path / "notes.txt").write_text("ignored")
    registry = load_jobs(tmp_path)
    assert sorted(registry.jobs) == ["a", "b", "c"]
    job = registry.get("c")
    assert job is not None
    assert job.allows_tool("t")
    assert not job.allows_tool("u")

    (tmp_path / "d.yaml").write_text("name: a\n")
    with pytest.raises(JobsError, match="agent 'a' is described twice"):
        load_jobs(tmp_path)
    bad = tmp_path / "bad.yaml"
    for text, message in [
        ("agents: [{name: x, colour: red}]", r"bad.yaml: agents\[0\].colour: unknown key"),
        ("agents: [{name: x, budgets: {steps: 0}}]", r"agents\[0\].budgets.steps"),
        ("agents: [\n", "bad.yaml line 2: not valid YAML"),
        ("agents: 3", "agents must be a list"),
    ]:
        bad.write_text(text)
        with pytest.raises(JobsError, match=message):
            load_jobs(bad)

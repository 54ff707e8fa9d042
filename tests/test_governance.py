"""Governance end to end: job descriptions against real OTel SDK traffic and a real
`agentwatch serve` — scope violations, sprawl, owners, budgets — and the kill switch,
the audit trail and scores posted through the API."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from agentwatch_sdk import AgentPaused, check_paused, configure, heartbeat
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Tracer

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from tests.harness import AgentwatchProcess, http, wait_for

JOBS = """
agents:
  - name: billing-agent
    owner: alice@example.com
    backup_owner: bob@example.com
    purpose: Answers billing questions.
    allowed_tools: [customer.get, "payments.*"]
    allowed_models: ["gpt-4o*"]
    budgets: {steps: 10}
    escalation: pages
  - name: support-agent
    owner: carol@example.com
    allowed_tools: [kb.search]
"""


@pytest.fixture
def agents_file(tmp_path: Path) -> Path:
    path = tmp_path / "agents.yaml"
    path.write_text(JOBS)
    return path


@pytest.fixture
def server(tmp_path: Path, agents_file: Path) -> Iterator[AgentwatchProcess]:
    process = AgentwatchProcess(
        tmp_path / "data", "--agents", str(agents_file), env={"AGENTWATCH_FLUSH_INTERVAL_S": "0.2"}
    )
    process.start()
    yield process
    process.kill()


def tracer(server: AgentwatchProcess, service: str) -> tuple[TracerProvider, Tracer]:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=server.endpoints["otlp_grpc"], insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, provider.get_tracer("test.governance")


def run(tracer_: Tracer, agent: str, steps: list[tuple[str, str]], conversation: str) -> str:
    """One agent run; each step is ("tool", name) or ("llm", model)."""
    with tracer_.start_as_current_span(
        f"invoke_agent {agent}",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": agent,
            "gen_ai.conversation.id": conversation,
        },
    ) as root:
        for kind, name in steps:
            if kind == "tool":
                attributes: dict[str, Any] = {
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": name,
                }
            else:
                attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": name}
            with tracer_.start_as_current_span(f"{kind} {name}", attributes=attributes):
                pass
        return format(root.get_span_context().trace_id, "032x")


def api(server: AgentwatchProcess, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return http().request(method, f"{server.endpoints['api']}{path}", timeout=10, **kwargs)


def findings(server: AgentwatchProcess, **params: Any) -> list[dict[str, Any]]:
    response = api(server, "GET", "/api/v1/findings", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["findings"]
    return found


def one(server: AgentwatchProcess, **params: Any) -> dict[str, Any]:
    found = wait_for(lambda: findings(server, **params), timeout_s=60)
    assert len(found) == 1, found
    return found[0]


def test_telemetry_is_checked_against_the_job_descriptions(server: AgentwatchProcess) -> None:
    billing, billing_tracer = tracer(server, "billing-svc")
    mystery, mystery_tracer = tracer(server, "mystery-svc")
    support, support_tracer = tracer(server, "support-svc")
    try:
        allowed = [("tool", "customer.get"), ("tool", "payments.refund"), ("llm", "gpt-4o-mini")]
        run(billing_tracer, "billing-agent", allowed, "b-1")
        outside = run(billing_tracer, "billing-agent", [("tool", "admin.delete_user")], "b-2")
        run(billing_tracer, "billing-agent", [("llm", "o3")], "b-3")
        long_run = run(billing_tracer, "billing-agent", [("tool", "customer.get")] * 12, "b-4")
        run(mystery_tracer, "mystery-agent", [("tool", "anything")], "m-1")
        run(support_tracer, "support-agent", [("tool", "kb.search")], "s-1")
    finally:
        for provider in (billing, mystery, support):
            provider.shutdown()

    violation = one(server, kind="scope_violation", tool="admin.delete_user")
    assert violation["agent_name"] == "billing-agent"
    assert violation["trace_id"] == outside
    assert violation["evidence"]["allowed"] == ["customer.get", "payments.*"]
    assert violation["evidence"]["escalation"] == "pages"
    model = wait_for(
        lambda: [
            f for f in findings(server, kind="scope_violation") if f["evidence"]["what"] == "model"
        ]
    )
    assert [f["evidence"]["name"] for f in model] == ["o3"]
    assert len(findings(server, kind="scope_violation")) == 2  # allowed calls raise none
    unregistered = one(server, kind="unregistered_agent")
    assert unregistered["agent_name"] == "mystery-agent"
    ownerless = one(server, kind="ownerless_agent")
    assert ownerless["agent_name"] == "support-agent"
    assert ownerless["evidence"]["missing"] == ["backup_owner"]
    budget = one(server, kind="budget_exceeded")
    assert (budget["trace_id"], budget["evidence"]["limit"]) == (long_run, 10)
    assert budget["evidence"]["used"] == 11  # found at the step past the budget
    card = api(server, "GET", "/api/v1/agents/billing-agent").json()
    assert card["job"]["owner"] == "alice@example.com"
    assert card["job"]["budgets"]["steps"] == 10


def test_a_fixed_job_description_is_taken_up_while_running(
    server: AgentwatchProcess, agents_file: Path
) -> None:
    support, support_tracer = tracer(server, "support-svc")
    try:
        run(support_tracer, "support-agent", [("tool", "kb.search")], "s-1")
        one(server, kind="ownerless_agent", state="open")
        agents_file.write_text(
            JOBS.replace(
                "owner: carol@example.com",
                "owner: carol@example.com\n    backup_owner: dan@example.com",
            )
        )

        resolved = wait_for(
            lambda: findings(server, kind="ownerless_agent", state="resolved"), timeout_s=60
        )
    finally:
        support.shutdown()

    assert resolved[0]["evidence"]["resolution"] == "owners named"
    events = api(server, "GET", "/api/v1/audit/events", params={"action": "jobs_loaded"}).json()
    assert len(events["events"]) == 2  # at start, and after the edit
    agents_file.write_text("agents: [{name: x, nonsense: 1}]")
    rejected = wait_for(
        lambda: api(
            server, "GET", "/api/v1/audit/events", params={"action": "jobs_rejected"}
        ).json()["events"]
    )
    assert "nonsense" in rejected[0]["details"]["error"]


def test_pause_and_resume_are_served_to_the_sdk_and_audited(server: AgentwatchProcess) -> None:
    assert api(server, "GET", "/api/v1/agents/billing-agent/control").json()["paused"] is False

    paused = api(
        server,
        "POST",
        "/api/v1/agents/billing-agent/pause",
        json={"reason": "refund loop, INC-42", "actor": "alice@example.com"},
    )
    assert paused.status_code == 200, paused.text
    control = api(server, "GET", "/api/v1/agents/billing-agent/control").json()
    assert (control["paused"], control["reason"]) == (True, "refund loop, INC-42")
    assert control["paused_by"].startswith("alice@example.com (tenant=default")
    assert api(server, "POST", "/api/v1/agents/billing-agent/pause", json={}).status_code == 422
    resumed = api(server, "POST", "/api/v1/agents/billing-agent/resume", json={"reason": "fixed"})
    assert resumed.json()["paused"] is False

    events = api(server, "GET", "/api/v1/audit/events").json()["events"]
    actions = [(e["action"], e["target"]) for e in events]
    assert actions[:2] == [("resume", "billing-agent"), ("pause", "billing-agent")]
    assert events[1]["details"]["reason"] == "refund loop, INC-42"
    assert ("jobs_loaded", str(Path(events[-1]["target"]))) == (
        events[-1]["action"],
        events[-1]["target"],
    )


def test_scores_posted_through_the_api_move_the_evaluation_series(
    server: AgentwatchProcess,
) -> None:
    trace_ids = [f"{n:032x}" for n in range(1, 81)]
    for n, trace_id in enumerate(trace_ids):
        score = 0.9 - 0.02 * (n % 5) if n < 50 else 0.3 + 0.02 * (n % 5)
        response = api(
            server,
            "POST",
            "/api/v1/scores",
            json={
                "trace_id": trace_id,
                "name": "reviewer",
                "score": score,
                "agent": "support-agent",
            },
        )
        assert response.status_code == 202, response.text
    bad = api(server, "POST", "/api/v1/scores", json={"trace_id": "xyz", "name": "r", "score": 1})
    assert bad.status_code == 422

    drift = one(server, kind="quality_drift")
    assert drift["agent_name"] == "support-agent"
    assert drift["evidence"]["evaluation_name"] == "reviewer"
    logs = api(server, "GET", "/api/v1/logs", params={"trace_id": trace_ids[0]}).json()["logs"]
    assert logs[0]["attributes"]["gen_ai.evaluation.score.value"] == "0.9"
    assert logs[0]["service_name"] == "agentwatch-feedback"


def test_bad_job_descriptions_stop_start_up_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  - name: a\n    budgets: {steps: 0}\n")
    process = AgentwatchProcess(tmp_path / "data", "--agents", str(path))

    with pytest.raises(AssertionError, match="agents"):
        process.start(timeout_s=30)
    code, _, err = process.wait()
    assert code == 2
    assert "agents[0].budgets.steps" in err
    assert err.strip().count("\n") == 0


def test_a_running_agent_stops_at_its_next_step_when_paused_and_goes_on_when_resumed(
    server: AgentwatchProcess,
) -> None:
    """A real agent loop with agentwatch_sdk's heartbeat: pause → AgentPaused soon after."""
    provider, agent_tracer = tracer(server, "billing-svc")
    configure(
        tracer_provider=provider,
        heartbeat_interval_s=0.1,
        control_url=server.endpoints["api"],
        control_interval_s=0.5,
    )
    steps: list[int] = []
    stopped: list[AgentPaused] = []
    go = threading.Event()

    def agent_loop() -> None:
        with agent_tracer.start_as_current_span(
            "invoke_agent billing-agent",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "billing-agent",
            },
        ):
            try:
                for step in range(100_000):
                    heartbeat(step=step)  # raises AgentPaused once paused
                    steps.append(step)
                    go.wait(0.05)  # the agent's own work for a step
            except AgentPaused as paused:
                stopped.append(paused)

    worker = threading.Thread(target=agent_loop, daemon=True)
    try:
        worker.start()
        wait_for(lambda: len(steps) >= 5)
        pause = api(
            server,
            "POST",
            "/api/v1/agents/billing-agent/pause",
            json={"reason": "INC-7 refund loop"},
        )
        assert pause.status_code == 200

        worker.join(60)  # "within 60 s of the pause"
        assert not worker.is_alive(), "the agent did not stop within 60 s of the pause"
        (paused,) = stopped
        assert (paused.agent, paused.reason) == ("billing-agent", "INC-7 refund loop")

        api(server, "POST", "/api/v1/agents/billing-agent/resume", json={})

        # Resumed: a new step of the agent passes its heartbeat again.
        def may_continue() -> bool:
            try:
                check_paused("billing-agent")
            except AgentPaused:
                return False
            return True

        assert wait_for(may_continue, timeout_s=30)
    finally:
        go.set()
        configure()
        provider.shutdown()

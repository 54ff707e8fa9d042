"""Detector scenarios end to end: real agents (OTel SDK + agentwatch_sdk over OTLP/gRPC)
against a real `agentwatch serve` subprocess, findings read from the query API.

Agents here are threads of this test process with their own TracerProvider; their
`Agent.work` is the agent's simulated work, not the test waiting. The test itself
only polls the API with a deadline.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from agentwatch_sdk import PendingSpanProcessor, configure, heartbeat, tool_call
from opentelemetry._logs import LogRecord
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Tracer

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from tests.harness import AgentwatchProcess, http, wait_for

MIN_IDLE_S = 3.0
CONFIG = f"""
detectors:
  zombie_run:
    min_idle: "{MIN_IDLE_S}s"
  runaway_loop:
    max_repeats: 3
"""


class Agent:
    """One agent process: its own provider, pending markers, batched OTLP/gRPC export."""

    def __init__(self, endpoint: str, name: str, instance: str) -> None:
        self.name = name
        resource = Resource.create({"service.name": f"{name}-svc", "service.instance.id": instance})
        self.provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        batch = BatchSpanProcessor(exporter, schedule_delay_millis=100)
        self.provider.add_span_processor(PendingSpanProcessor(batch))
        self.tracer: Tracer = self.provider.get_tracer("agent.loop")
        self.trace_ids: list[str] = []
        self.errors: list[BaseException] = []

    def run(
        self,
        conversation: str,
        steps: int,
        step_s: float,
        *,
        block_at: int = -1,
        unblock: threading.Event | None = None,
        same_arguments: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        """An agent loop: heartbeat, an LLM call, a tool call, per step."""
        try:
            with self.tracer.start_as_current_span(
                f"invoke_agent {self.name}",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": self.name,
                    "gen_ai.conversation.id": conversation,
                },
            ) as root:
                self.trace_ids.append(format(root.get_span_context().trace_id, "032x"))
                for step in range(steps):
                    if stop is not None and stop.is_set():
                        break
                    heartbeat(step=step)
                    with self.tracer.start_as_current_span(
                        "chat gpt-4o",
                        attributes={
                            "gen_ai.operation.name": "chat",
                            "gen_ai.usage.input_tokens": 50,
                        },
                    ):
                        self.work(step_s / 2, stop)
                    arguments = {"customer": "c-1" if same_arguments else f"c-{step}"}
                    with tool_call("crm.lookup", arguments=arguments):
                        if step == block_at and unblock is not None:
                            unblock.wait(120)
                        else:
                            self.work(step_s / 2, stop)
        except BaseException as exc:  # surfaced by the test, not lost in the thread
            self.errors.append(exc)

    @staticmethod
    def work(seconds: float, stop: threading.Event | None) -> None:
        """The agent's own work for a step (cut short when the test stops the agent)."""
        (stop or threading.Event()).wait(seconds)

    def keep_exporting(self, stop: threading.Event) -> None:
        """Other telemetry from the same process (its health checks keep going)."""
        while not stop.wait(0.3):
            with self.tracer.start_as_current_span("GET /healthz"):
                pass

    def shutdown(self) -> None:
        self.provider.shutdown()


def start(target: Any, *args: Any, **kwargs: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
    thread.start()
    return thread


def findings(server: AgentwatchProcess, **params: Any) -> list[dict[str, Any]]:
    response = http().get(f"{server.endpoints['api']}/api/v1/findings", params=params, timeout=10)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["findings"]
    return found


def detectors_ticked_past(server: AgentwatchProcess, moment_s: float) -> bool:
    """Whether the detectors have ticked at an event time after `moment_s`."""
    text = http().get(f"{server.endpoints['api']}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("agentwatch_detector_tick_time_seconds "):
            return float(line.split()[1]) > moment_s
    return False


def finding_for(
    server: AgentwatchProcess, kind: str, trace_id: str, state: str | None = None
) -> Callable[[], dict[str, Any] | None]:
    def match() -> dict[str, Any] | None:
        for finding in findings(server, kind=kind):
            if finding["trace_id"] == trace_id and (state is None or finding["state"] == state):
                return finding
        return None

    return match


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agentwatch.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def server(tmp_path: Path, config_file: Path) -> Iterator[AgentwatchProcess]:
    process = AgentwatchProcess(
        tmp_path / "data", "--config", str(config_file), env={"AGENTWATCH_FLUSH_INTERVAL_S": "0.2"}
    )
    process.start()
    yield process
    process.kill()


@pytest.fixture(autouse=True)
def _sdk_defaults() -> Iterator[None]:
    configure(heartbeat_interval_s=0.2)
    yield
    configure()


def test_zombie_run_is_found_naming_the_stuck_tool_and_resolves_when_it_unblocks(
    server: AgentwatchProcess,
) -> None:
    agent = Agent(server.endpoints["otlp_grpc"], "support-agent", "host-1:4242")
    configure(tracer_provider=agent.provider, heartbeat_interval_s=0.2)
    unblock, stop = threading.Event(), threading.Event()
    loop = start(agent.run, "conv-z", steps=4, step_s=0.4, block_at=2, unblock=unblock)
    exporter = start(agent.keep_exporting, stop)
    try:
        trace_id = wait_for(lambda: agent.trace_ids[0] if agent.trace_ids else None)
        opened = wait_for(finding_for(server, "zombie_run", trace_id, "open"), timeout_s=60)
        assert opened["agent_name"] == "support-agent"
        assert opened["tool_name"] == "crm.lookup"
        assert opened["run_id"] == "conv-z"
        assert "stuck in execute_tool crm.lookup" in opened["summary"]
        assert "still exporting" in opened["summary"]
        evidence = opened["evidence"]
        stuck = next(s for s in evidence["open_spans"] if s["span_id"] == evidence["stuck_span_id"])
        assert stuck["tool_name"] == "crm.lookup"
        assert stuck["announced"] is True
        assert evidence["process"]["service_instance_id"] == "host-1:4242"
        assert evidence["process"]["still_exporting"] is True
        # Event time: opened within threshold + 5 s of the last activity.
        assert MIN_IDLE_S <= evidence["idle_s"] <= MIN_IDLE_S + 5

        unblock.set()
        loop.join(30)
        resolved = wait_for(finding_for(server, "zombie_run", trace_id, "resolved"), timeout_s=60)
        assert resolved["id"] == opened["id"]
        assert resolved["evidence"]["resolution"] in ("activity resumed", "run ended")
        assert len(findings(server, kind="zombie_run")) == 1  # one finding per incident
    finally:
        unblock.set()
        stop.set()
        exporter.join(5)
        agent.shutdown()
    assert not agent.errors


def test_runaway_loop_is_found_while_the_run_is_still_going(server: AgentwatchProcess) -> None:
    agent = Agent(server.endpoints["otlp_grpc"], "research-agent", "host-2:1")
    configure(tracer_provider=agent.provider, heartbeat_interval_s=0.2)
    stop = threading.Event()
    loop = start(agent.run, "conv-r", steps=200, step_s=0.1, same_arguments=True, stop=stop)
    try:
        trace_id = wait_for(lambda: agent.trace_ids[0] if agent.trace_ids else None)
        found = wait_for(finding_for(server, "runaway_loop", trace_id), timeout_s=60)
        assert loop.is_alive(), "the finding must come while the loop is still running"
        assert found["state"] == "open"
        assert found["tool_name"] == "crm.lookup"
        assert found["evidence"]["reason"] == "repeated_call"
        assert found["evidence"]["count"] >= 3
        assert len(found["evidence"]["span_ids"]) >= 3
        assert "crm.lookup" in found["summary"]
    finally:
        stop.set()
        loop.join(30)
        agent.shutdown()
    resolved = wait_for(finding_for(server, "runaway_loop", trace_id, "resolved"), timeout_s=60)
    assert resolved["evidence"]["resolution"] == "run ended"
    assert not agent.errors


def test_healthy_slow_long_and_parallel_runs_raise_no_finding(server: AgentwatchProcess) -> None:
    agents = [
        Agent(server.endpoints["otlp_grpc"], name, f"host-{i}:1")
        for i, name in enumerate(["billing-agent", "support-agent"])
    ]
    provider = agents[0].provider  # heartbeats go through one provider; spans through both
    configure(tracer_provider=provider, heartbeat_interval_s=0.2)
    runs = [
        # slow but progressing: every step takes most of the idle threshold
        start(agents[0].run, "conv-slow", steps=4, step_s=MIN_IDLE_S * 0.6),
        # a long run of many quick steps
        start(agents[1].run, "conv-long", steps=40, step_s=0.15),
        # parallel runs in one process
        start(agents[1].run, "conv-p1", steps=10, step_s=0.3),
        start(agents[1].run, "conv-p2", steps=10, step_s=0.3),
    ]
    for run in runs:
        run.join(120)
    for agent in agents:
        agent.shutdown()
    trace_ids = [trace_id for agent in agents for trace_id in agent.trace_ids]
    assert len(trace_ids) == 4

    def all_stored() -> bool:
        for trace_id in trace_ids:
            url = f"{server.endpoints['api']}/api/v1/traces/{trace_id}"
            body = http().get(url, timeout=10).json()
            if not any(s["operation"] == "invoke_agent" for s in body.get("spans", [])):
                return False
        return True

    wait_for(all_stored, timeout_s=60)
    # The detectors must have ticked well past the threshold after the last run ended,
    # so a wrong zombie finding would have been opened by now.
    past = time.time() + MIN_IDLE_S + 1
    wait_for(lambda: detectors_ticked_past(server, past), timeout_s=30, interval_s=0.2)
    assert findings(server) == []
    assert not any(agent.errors for agent in agents)


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_open_zombie_survives_a_restart_and_resolves_after_it(
    tmp_path: Path, config_file: Path, how: str
) -> None:
    data_dir = tmp_path / "data"
    env = {"AGENTWATCH_FLUSH_INTERVAL_S": "0.2"}
    first = AgentwatchProcess(data_dir, "--config", str(config_file), env=env).start()
    grpc = first.endpoints["otlp_grpc"]
    agent = Agent(grpc, "billing-agent", "host-9:1")
    configure(tracer_provider=agent.provider, heartbeat_interval_s=0.2)
    unblock = threading.Event()
    loop = start(agent.run, "conv-k", steps=3, step_s=0.3, block_at=1, unblock=unblock)
    second: AgentwatchProcess | None = None
    try:
        trace_id = wait_for(lambda: agent.trace_ids[0] if agent.trace_ids else None)
        opened = wait_for(finding_for(first, "zombie_run", trace_id, "open"), timeout_s=60)
        if how == "sigterm":
            first.signal(signal.SIGTERM)
            assert first.wait()[0] == 0
        else:
            first.kill()
        # Same OTLP port, so the agent's exporter finds the new process.
        second = AgentwatchProcess(
            data_dir, "--config", str(config_file), "--otlp-grpc", grpc, env=env
        ).start()
        still = wait_for(finding_for(second, "zombie_run", trace_id), timeout_s=30)
        assert (still["id"], still["state"]) == (opened["id"], "open")

        unblock.set()
        loop.join(30)
        resolved = wait_for(finding_for(second, "zombie_run", trace_id, "resolved"), timeout_s=60)
        assert resolved["id"] == opened["id"]
        # Neither forgotten (a new finding) nor reopened after resolution.
        past = time.time() + MIN_IDLE_S + 1
        wait_for(lambda: detectors_ticked_past(second, past), timeout_s=30, interval_s=0.2)
        assert [f["id"] for f in findings(second, kind="zombie_run")] == [opened["id"]]
        assert findings(second, kind="zombie_run")[0]["state"] == "resolved"
    finally:
        unblock.set()
        agent.shutdown()
        first.kill()
        if second is not None:
            second.kill()
    assert not agent.errors


# Short windows and 20 calls/s: ~100 calls in the long window, ~30 in the short one.
SPIKE_CONFIG = """
detectors:
  tool_failure_spike:
    min_calls: 10
    windows:
      - {long: "5s", short: "1.5s", burn_rate: 4, severity: error}
"""


def _call_tools(agent: Agent, phases: list[tuple[float, int]], stop: threading.Event) -> None:
    """Tool calls at 20/s: crm.lookup fails `n` in 20 per phase; kb.search 1 in 10 always."""
    tracer = agent.tracer
    i = 0
    for seconds, failing_in_20 in phases:
        phase_end = time.monotonic() + seconds
        while time.monotonic() < phase_end and not stop.is_set():
            with tracer.start_as_current_span(
                "invoke_agent support-agent",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "support-agent",
                },
            ):
                with tool_call("crm.lookup", arguments={"n": i}) as call:
                    if i % 20 < failing_in_20:
                        call.mark_failed("Timeout", "upstream timed out")
                with tool_call("kb.search", arguments={"n": i}) as call:
                    if i % 10 == 0:
                        call.mark_failed("NotFound", "no match")
            i += 1
            Agent.work(0.05, stop)


def test_tool_failure_spike_is_found_within_a_minute_and_resolves(tmp_path: Path) -> None:
    config = tmp_path / "spike.yaml"
    config.write_text(SPIKE_CONFIG)
    server = AgentwatchProcess(
        tmp_path / "data", "--config", str(config), env={"AGENTWATCH_FLUSH_INTERVAL_S": "0.2"}
    ).start()
    agent = Agent(server.endpoints["otlp_grpc"], "support-agent", "host-5:1")
    configure(tracer_provider=agent.provider)
    stop = threading.Event()
    try:
        # 10 s healthy: the last 5 s are the long window, the first 5 s the baseline.
        healthy = start(_call_tools, agent, [(10, 1)], stop)  # 5% (and kb.search 10%)
        healthy.join(120)
        jump_at = time.time()
        spiking = start(_call_tools, agent, [(60, 8)], stop)  # 40%

        def crm_spike() -> dict[str, Any] | None:
            found = findings(server, kind="tool_failure_spike")
            return next((f for f in found if f["tool_name"] == "crm.lookup"), None)

        opened = wait_for(crm_spike, timeout_s=90, interval_s=0.5)
        stop.set()
        spiking.join(30)
        assert opened["state"] == "open"
        assert opened["agent_name"] == "support-agent"
        opened_at = datetime.fromisoformat(opened["opened_at"].replace("Z", "+00:00"))
        assert opened_at.timestamp() - jump_at <= 60  # event time: within a minute
        assert opened["evidence"]["top_error_types"][0]["error_type"] == "Timeout"
        assert opened["evidence"]["example_trace_ids"]

        stop.clear()
        recovering = start(_call_tools, agent, [(40, 1)], stop)

        def resolved() -> dict[str, Any] | None:
            found = findings(server, kind="tool_failure_spike", state="resolved")
            return next((f for f in found if f["id"] == opened["id"]), None)

        wait_for(resolved, timeout_s=60, interval_s=0.5)
        stop.set()
        recovering.join(30)
        # kb.search failed 10% of its calls all along: never a spike.
        assert {f["tool_name"] for f in findings(server, kind="tool_failure_spike")} == {
            "crm.lookup"
        }
    finally:
        stop.set()
        agent.shutdown()
        server.kill()


def test_a_model_swap_is_a_change_point(server: AgentwatchProcess) -> None:
    agent = Agent(server.endpoints["otlp_grpc"], "research-agent", "host-6:1")
    try:
        for n in range(60):
            model = "gpt-4o" if n < 40 else "gpt-4.1-mini"
            with (
                agent.tracer.start_as_current_span(
                    "invoke_agent research-agent",
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": "research-agent",
                    },
                ),
                agent.tracer.start_as_current_span(
                    f"chat {model}",
                    attributes={
                        "gen_ai.operation.name": "chat",
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": model,
                        "gen_ai.response.model": f"{model}-2026-01-01",
                    },
                ),
            ):
                pass
    finally:
        agent.shutdown()

    found = wait_for(lambda: findings(server, kind="change_point"), timeout_s=60)

    assert len(found) == 1
    assert found[0]["agent_name"] == "research-agent"
    assert found[0]["severity"] == "info"
    assert found[0]["evidence"]["from"] == "openai/gpt-4o-2026-01-01"
    assert found[0]["evidence"]["to"] == "openai/gpt-4.1-mini-2026-01-01"


def test_evaluation_scores_that_drop_are_quality_drift(server: AgentwatchProcess) -> None:
    agent = Agent(server.endpoints["otlp_grpc"], "support-agent", "host-7:1")
    try:
        for n in range(120):
            score = 0.9 - 0.02 * (n % 5) if n < 80 else 0.5 + 0.02 * (n % 5)
            with agent.tracer.start_as_current_span(
                "invoke_agent support-agent",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "support-agent",
                },
            ) as run:
                run.add_event(
                    "gen_ai.evaluation.result",
                    {
                        "gen_ai.evaluation.name": "helpfulness",
                        "gen_ai.evaluation.score.value": score,
                    },
                )
    finally:
        agent.shutdown()

    found = wait_for(lambda: findings(server, kind="quality_drift"), timeout_s=60)

    assert len(found) == 1
    assert found[0]["agent_name"] == "support-agent"
    assert found[0]["evidence"]["evaluation_name"] == "helpfulness"
    assert found[0]["evidence"]["recent_mean"] < found[0]["evidence"]["reference_mean"] - 0.05


def test_evaluation_log_records_are_quality_drift_of_their_traces_agent(
    server: AgentwatchProcess,
) -> None:
    """Evaluations sent as OTLP log records (no agent on them) join their trace's agent."""
    agent = Agent(server.endpoints["otlp_grpc"], "support-agent", "host-8:1")
    logs = LoggerProvider(resource=Resource.create({"service.name": "support-agent-svc"}))
    logs.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=server.endpoints["otlp_grpc"], insecure=True),
            schedule_delay_millis=100,
        )
    )
    evaluator = logs.get_logger("evaluator")
    try:
        for n in range(120):
            score = 0.9 - 0.02 * (n % 5) if n < 80 else 0.5 + 0.02 * (n % 5)
            with agent.tracer.start_as_current_span(
                "invoke_agent support-agent",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": "support-agent",
                },
            ):
                # Emitted while the run is open (the record carries the run's trace and
                # span ids from the context): it may reach agentwatch before the span.
                evaluator.emit(
                    LogRecord(
                        event_name="gen_ai.evaluation.result",
                        context=get_current(),
                        attributes={
                            "gen_ai.evaluation.name": "helpfulness",
                            "gen_ai.evaluation.score.value": score,
                        },
                    )
                )
    finally:
        agent.shutdown()
        logs.shutdown()

    found = wait_for(lambda: findings(server, kind="quality_drift"), timeout_s=60)

    assert len(found) == 1
    assert found[0]["agent_name"] == "support-agent"  # from the trace, not the service
    assert found[0]["evidence"]["evaluation_name"] == "helpfulness"
    assert found[0]["evidence"]["recent_mean"] < found[0]["evidence"]["reference_mean"] - 0.05


COST_CONFIG = """
detectors:
  cost_spike:
    min_runs: 5
    min_run_usd: 0.01
pricing:
  - {model: house-model, input: 10.0, output: 30.0}
"""
COST_JOBS = """
agents:
  - name: pricey-agent
    owner: alice@example.com
    backup_owner: bob@example.com
    budgets: {cost_usd: 1.0}
"""


def _priced_run(tracer: Tracer, conversation: str, calls: int, input_tokens: int) -> str:
    """One run of `calls` house-model calls (200 output tokens each); its trace id."""
    with tracer.start_as_current_span(
        "invoke_agent pricey-agent",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "pricey-agent",
            "gen_ai.conversation.id": conversation,
        },
    ) as root:
        for _ in range(calls):
            with tracer.start_as_current_span(
                "chat house-model",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "house-model",
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": 200,
                },
            ):
                pass
        return format(root.get_span_context().trace_id, "032x")


def test_a_run_burning_many_tokens_is_a_cost_spike_and_past_its_cost_budget(
    tmp_path: Path,
) -> None:
    config, jobs = tmp_path / "cost.yaml", tmp_path / "agents.yaml"
    config.write_text(COST_CONFIG)
    jobs.write_text(COST_JOBS)
    server = AgentwatchProcess(
        tmp_path / "data",
        "--config",
        str(config),
        "--agents",
        str(jobs),
        env={"AGENTWATCH_FLUSH_INTERVAL_S": "0.2"},
    ).start()
    provider = TracerProvider(resource=Resource.create({"service.name": "pricey-svc"}))
    exporter = OTLPSpanExporter(endpoint=server.endpoints["otlp_grpc"], insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test.cost")
    try:
        usual = [_priced_run(tracer, f"c-{n}", 2, 1000) for n in range(8)]  # $0.032 each
        assert len(usual) == 8
        pricey = _priced_run(tracer, "c-pricey", 5, 50_000)  # $2.53: a loop of big prompts

        spike = wait_for(finding_for(server, "cost_spike", pricey), timeout_s=60)
        assert spike["agent_name"] == "pricey-agent"
        assert spike["state"] == "open"
        evidence = spike["evidence"]
        assert evidence["check"] == "run"
        assert evidence["cost_usd"] == 2.53  # priced by the config's pricing: entry
        assert evidence["calls"] == 5
        assert evidence["top_models"][0]["model"] == "house-model"
        assert abs(evidence["baseline_usd"] - 0.032) < 1e-9

        budget = wait_for(finding_for(server, "budget_exceeded", pricey), timeout_s=60)
        assert budget["evidence"]["budget"] == "cost_usd"
        assert budget["evidence"]["limit"] == 1.0
        assert 1.0 < budget["evidence"]["used"] <= 2.53
        # The usual runs: neither a spike nor over budget.
        assert [f["trace_id"] for f in findings(server, kind="cost_spike")] == [pricey]
        assert [f["trace_id"] for f in findings(server, kind="budget_exceeded")] == [pricey]
    finally:
        provider.shutdown()
        server.kill()

"""`agentwatch export-evalset`: flagged runs as JSONL evaluation cases.

End to end: a real agentwatch (in a thread, chDB in a temp dir, API tokens on), agents
sending real OTel SDK traffic over OTLP/gRPC — a run looping on one tool with the same
arguments (a runaway_loop finding), a healthy run, another agent's loop — and the CLI
run as a subprocess against the query API. The case builder and the choice of runs are
also tested on fixed API answers, and the "names no runs" path against a small fake
API (an `httpx.MockTransport`).
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from agentwatch_sdk import configure, tool_call
from opentelemetry._logs import LogRecord
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from agentwatch._evalset import (
    LLM_OPERATIONS,
    ExportError,
    ExportOptions,
    build_case,
    export,
    options_from_args,
    trace_ids_of,
)
from agentwatch.cli import build_parser
from ingest._conventions import LLM_OPERATIONS as INGEST_LLM_OPERATIONS
from tests.harness import AgentwatchThread, http, make_settings, wait_for

TOKEN = "evalset-token"
CONFIG = """
detectors:
  runaway_loop:
    max_repeats: 3
"""
QUESTION = [{"role": "user", "parts": [{"type": "text", "content": "What plan is c-1 on?"}]}]
ANSWER = [{"role": "assistant", "parts": [{"type": "text", "content": "c-1 is on pro."}]}]
LOOKUP_RESULT = {"customer": "c-1", "plan": "pro"}


class Agent:
    """One agent process: spans and evaluation log records over OTLP/gRPC, batched."""

    def __init__(self, endpoint: str, name: str) -> None:
        self.name = name
        resource = Resource.create({"service.name": f"{name}-svc"})
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=100
            )
        )
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=100
            )
        )
        self.tracer = self.tracer_provider.get_tracer("agent.loop")
        self.evaluator = self.logger_provider.get_logger("evaluator")

    def run(self, conversation: str, customers: list[str], *, fail_last: bool = False) -> str:
        """One run: an LLM call, a crm.lookup per customer, an answer, two scores."""
        configure(tracer_provider=self.tracer_provider)
        with self.tracer.start_as_current_span(
            f"invoke_agent {self.name}",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": self.name,
                "gen_ai.conversation.id": conversation,
                "gen_ai.input.messages": json.dumps(QUESTION),
            },
        ) as root:
            with self.tracer.start_as_current_span(
                "chat gpt-4o",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 50,
                    "gen_ai.usage.output_tokens": 12,
                    "gen_ai.input.messages": json.dumps(QUESTION),
                },
            ):
                pass
            for n, customer in enumerate(customers):
                try:
                    with tool_call("crm.lookup", arguments={"customer": customer}) as call:
                        if fail_last and n == len(customers) - 1:
                            raise TimeoutError("crm did not answer")
                        result = {**LOOKUP_RESULT, "customer": customer}
                        call.span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
                except TimeoutError:
                    pass  # the agent carries on; the span records the failure
            root.set_attribute("gen_ai.output.messages", json.dumps(ANSWER))
            root.add_event(
                "gen_ai.evaluation.result",
                {
                    "gen_ai.evaluation.name": "helpfulness",
                    "gen_ai.evaluation.score.value": 0.25,
                    "gen_ai.evaluation.score.label": "bad",
                },
            )
            self.evaluator.emit(
                LogRecord(
                    event_name="gen_ai.evaluation.result",
                    context=get_current(),
                    attributes={
                        "gen_ai.evaluation.name": "correctness",
                        "gen_ai.evaluation.score.value": 0.0,
                        "gen_ai.evaluation.score.label": "incorrect",
                    },
                )
            )
            return format(root.get_span_context().trace_id, "032x")

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


@dataclass
class Scenario:
    running: AgentwatchThread
    data_dir: Path
    looping: str  # billing-agent's looping trace
    healthy: str  # billing-agent's healthy trace
    other: str  # support-agent's looping trace
    finding: dict[str, Any]  # the runaway_loop finding of `looping`

    @property
    def api(self) -> str:
        return self.running.endpoints.api


def api_get(api: str, path: str, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {TOKEN}"}
    return http().get(f"{api}{path}", params=params, headers=headers, timeout=30)


def runaway_finding(api: str, trace_id: str) -> dict[str, Any] | None:
    found = api_get(api, "/api/v1/findings", kind="runaway_loop", trace_id=trace_id).json()
    return next(iter(found["findings"]), None)


def fully_stored(api: str, trace_id: str, tool_calls: int) -> bool:
    """The trace's agent span, LLM call and tool calls, and its evaluation log record."""
    response = api_get(api, f"/api/v1/traces/{trace_id}")
    if response.status_code != 200:
        return False
    operations = [s["operation"] for s in response.json()["spans"]]
    logs = api_get(api, "/api/v1/logs", trace_id=trace_id).json()["logs"]
    return (
        operations.count("invoke_agent") == 1
        and operations.count("chat") == 1
        and operations.count("execute_tool") == tool_calls
        and len(logs) == 1
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("evalset")
    config = root / "agentwatch.yaml"
    config.write_text(CONFIG)
    data_dir = root / "data"
    settings = make_settings(data_dir, config=config, api_tokens={TOKEN: "default"})
    with AgentwatchThread(settings) as running:
        billing = Agent(running.grpc_target, "billing-agent")
        support = Agent(running.grpc_target, "support-agent")
        try:
            looping = billing.run("conv-loop", ["c-1"] * 4, fail_last=True)
            healthy = billing.run("conv-ok", ["c-1", "c-2", "c-3"])
            other = support.run("conv-other", ["c-9"] * 3)
        finally:
            billing.shutdown()
            support.shutdown()
            configure()
        api = running.endpoints.api
        finding = wait_for(lambda: runaway_finding(api, looping), timeout_s=60)
        wait_for(lambda: runaway_finding(api, other), timeout_s=60)
        for trace_id, tool_calls in ((looping, 4), (healthy, 3), (other, 3)):
            wait_for(functools.partial(fully_stored, api, trace_id, tool_calls), timeout_s=60)
        yield Scenario(running, data_dir, looping, healthy, other, finding)


def export_evalset(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    """`agentwatch export-evalset ARGS` as a subprocess; the token from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTWATCH_", "OTEL_"))}
    if token is not None:
        env["AGENTWATCH_API_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "agentwatch.cli", "export-evalset", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@dataclass
class Exports:
    out_dir: Path  # where the runs that take --out write
    done: dict[str, subprocess.CompletedProcess[str]]  # each run below, by name


@pytest.fixture(scope="module")
def exports(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Exports:
    """The CLI runs against the scenario, by name, one per core at a time.

    Each is a subprocess that spends ~2 s importing (CPU) and then only reads the API,
    so they share the cores instead of running one after the other.
    """
    out_dir = tmp_path_factory.mktemp("exports")
    api, finding = scenario.api, scenario.finding["id"]
    runs: dict[str, tuple[tuple[str, ...], str | None]] = {
        "finding": (
            ("--finding", finding, "--api", api, "--out", str(out_dir / "finding.jsonl")),
            TOKEN,
        ),
        "billing": (
            ("--agent", "billing-agent", "--since", "1h", "--api", api, "--token", TOKEN),
            None,
        ),
        "support": (("--agent", "support-agent", "--api", api, "--out", "-"), TOKEN),
        "nobody": (
            ("--agent", "nobody", "--api", api, "--out", str(out_dir / "nobody.jsonl")),
            TOKEN,
        ),
        "future": (
            ("--agent", "billing-agent", "--since", "2999-01-01T00:00:00Z", "--api", api),
            TOKEN,
        ),
        "before": (
            ("--agent", "billing-agent", "--since", "2h", "--until", "1h", "--api", api),
            TOKEN,
        ),
        "endpoints file": (("--finding", finding, "--data-dir", str(scenario.data_dir)), TOKEN),
        "unknown finding": (
            ("--finding", "0" * 32, "--api", api, "--out", str(out_dir / "unknown.jsonl")),
            TOKEN,
        ),
        "no token": (("--finding", finding, "--api", api), None),
    }
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        running = {
            name: pool.submit(export_evalset, *args, token=token)
            for name, (args, token) in runs.items()
        }
        return Exports(out_dir, {name: future.result() for name, future in running.items()})


def read_cases(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    assert lines, "no cases"
    cases: list[dict[str, Any]] = [json.loads(line) for line in lines]  # each line is JSON
    assert all(isinstance(case, dict) for case in cases)
    return cases


# -- end to end ------------------------------------------------------------------------


def test_a_finding_exports_its_run_with_input_output_tool_calls_finding_and_scores(
    scenario: Scenario, exports: Exports
) -> None:
    out = exports.out_dir / "finding.jsonl"
    done = exports.done["finding"]  # --finding ID --api API --out OUT

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == f"agentwatch export-evalset: wrote 1 case to {out}"
    [case] = read_cases(out.read_text(encoding="utf-8"))
    assert case["case_id"] == case["trace_id"] == scenario.looping
    assert (case["agent"], case["service"], case["run_id"]) == (
        "billing-agent",
        "billing-agent-svc",
        "conv-loop",
    )
    assert case["started_at"].endswith("Z")
    assert case["input"] == QUESTION  # parsed from gen_ai.input.messages, not a string
    assert case["output"] == ANSWER
    calls = case["tool_calls"]
    assert [c["name"] for c in calls] == ["crm.lookup"] * 4
    assert [c["arguments"] for c in calls] == [{"customer": "c-1"}] * 4
    assert [c["result"] for c in calls] == [LOOKUP_RESULT] * 3 + [None]
    assert [c["status"] for c in calls] == ["ok", "ok", "ok", "error"]
    assert [c["error_type"] for c in calls] == [None, None, None, "TimeoutError"]
    assert set(scenario.finding["evidence"]["span_ids"]) <= {c["span_id"] for c in calls}
    assert case["llm_calls"] == [{"model": "gpt-4o", "input_tokens": 50, "output_tokens": 12}]
    [finding] = case["findings"]
    assert finding["id"] == scenario.finding["id"]
    assert (finding["kind"], finding["evidence"]["tool_name"]) == ("runaway_loop", "crm.lookup")
    assert finding["summary"] == scenario.finding["summary"]
    assert finding["severity"] in ("error", "critical")
    scores = {(s["source"], s["name"]): s for s in case["scores"]}
    assert set(scores) == {("span_event", "helpfulness"), ("log", "correctness")}
    assert (
        scores["span_event", "helpfulness"]["score"],
        scores["span_event", "helpfulness"]["label"],
    ) == (0.25, "bad")
    assert (scores["log", "correctness"]["score"], scores["log", "correctness"]["label"]) == (
        0.0,
        "incorrect",
    )


def test_an_agent_exports_the_runs_of_its_findings_only(
    scenario: Scenario, exports: Exports
) -> None:
    billing = exports.done["billing"]  # --agent billing-agent --since 1h --token (no env)
    support = exports.done["support"]  # --agent support-agent --out -

    assert billing.returncode == 0, billing.stderr
    assert [c["trace_id"] for c in read_cases(billing.stdout)] == [scenario.looping]
    assert support.returncode == 0, support.stderr
    [case] = read_cases(support.stdout)
    assert (case["trace_id"], case["agent"]) == (scenario.other, "support-agent")
    assert [c["arguments"] for c in case["tool_calls"]] == [{"customer": "c-9"}] * 3
    assert [f["kind"] for f in case["findings"]] == ["runaway_loop"]


def test_an_agent_without_findings_in_the_range_writes_nothing(exports: Exports) -> None:
    out = exports.out_dir / "nobody.jsonl"
    unknown = exports.done["nobody"]  # --agent nobody --out OUT
    future = exports.done["future"]  # --agent billing-agent --since 2999-01-01T00:00:00Z
    before = exports.done["before"]  # --agent billing-agent --since 2h --until 1h

    assert unknown.returncode == 1, unknown.stderr
    assert "no findings of agent nobody" in unknown.stderr
    assert not out.exists()
    assert future.returncode == 1, future.stderr
    assert future.stdout == ""
    assert before.returncode == 1, before.stderr  # opened after --until
    assert before.stdout == ""


def test_the_api_address_comes_from_the_data_dirs_endpoints_file(
    scenario: Scenario, exports: Exports
) -> None:
    done = exports.done["endpoints file"]  # --finding ID --data-dir DIR (no --api)

    assert done.returncode == 0, done.stderr
    assert [c["trace_id"] for c in read_cases(done.stdout)] == [scenario.looping]


def test_an_unknown_finding_is_one_line_and_exit_2(scenario: Scenario, exports: Exports) -> None:
    out = exports.out_dir / "unknown.jsonl"
    done = exports.done["unknown finding"]  # --finding 000...0 --api API --out OUT

    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"agentwatch export-evalset: no finding {'0' * 32} at {scenario.api}"
    ]
    assert not out.exists()


def test_a_missing_token_is_one_line_and_exit_2(exports: Exports) -> None:
    done = exports.done["no token"]  # --finding ID --api API, no token anywhere

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert "refused the request (HTTP 401)" in line
    assert "AGENTWATCH_API_TOKEN" in line


def test_an_unreachable_api_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    out = tmp_path / "cases.jsonl"
    done = export_evalset("--finding", "abc", "--api", url, "--out", str(out))

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith(f"agentwatch export-evalset: cannot reach the agentwatch API at {url}")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --finding ID and --agent NAME"),
        (["--finding", "f", "--agent", "a"], "give exactly one of --finding ID and --agent NAME"),
        (["--finding", "f", "--since", "1h"], "--since and --until go with --agent"),
        (["--agent", "a", "--since", "yesterday"], "--since: 'yesterday' is not"),
        (["--agent", "a", "--since", "1h", "--until", "2h"], "--until is before --since"),
        (["--agent", "a", "--api", "127.0.0.1:8000"], "is not an http:// or https:// URL"),
        (["--agent", "a", "--out", "/no/such/dir/x.jsonl"], "no such directory"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentwatch.cli import main

    assert main(["export-evalset", *args]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("agentwatch export-evalset: ")
    assert message in line


# -- which runs, and the case, on fixed API answers ------------------------------------


def test_the_api_defaults_to_the_endpoints_file_then_to_loopback(tmp_path: Path) -> None:
    def options(*args: str) -> ExportOptions:
        parsed = build_parser().parse_args(["export-evalset", "--agent", "a", *args])
        return options_from_args(parsed, {"AGENTWATCH_API_TOKEN": "from-env"})

    assert options("--data-dir", str(tmp_path)).api == "http://127.0.0.1:8000"
    (tmp_path / "endpoints.json").write_text(json.dumps({"api": "http://127.0.0.1:9123"}))
    assert options("--data-dir", str(tmp_path)).api == "http://127.0.0.1:9123"
    assert options("--api", "http://h:1/", "--data-dir", str(tmp_path)).api == "http://h:1"
    assert options("--data-dir", str(tmp_path)).token == "from-env"
    assert options("--token", "given", "--data-dir", str(tmp_path)).token == "given"
    (tmp_path / "endpoints.json").write_text("{}")
    with pytest.raises(ExportError, match="no API address"):
        options("--data-dir", str(tmp_path))


def test_a_findings_runs_are_its_trace_then_the_traces_its_evidence_names() -> None:
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    spike = {"trace_id": b, "evidence": {"example_trace_ids": [a, b.upper(), "nope"]}}
    drift = {"trace_id": "", "evidence": {"signal": "evaluation_score", "example_trace_id": c}}
    behaviour = {"trace_id": "", "evidence": {"signal": "behaviour", "drivers": []}}

    assert trace_ids_of(spike) == [b, a]
    assert trace_ids_of(drift) == [c]
    assert trace_ids_of(behaviour) == []


def span(span_id: str, start: str, operation: str, **fields: Any) -> dict[str, Any]:
    """A span as `/api/v1/traces/{id}` answers it."""
    return {
        "span_id": span_id,
        "start_time": start,
        "operation": operation,
        "agent_name": fields.pop("agent_name", "svc"),
        "service_name": "svc",
        "run_id": "r-1",
        "tool_name": fields.pop("tool_name", ""),
        "model": fields.pop("model", ""),
        "input_tokens": 0,
        "output_tokens": 0,
        "is_error": False,
        "error_type": "",
        "events": [],
        "attributes": fields.pop("attributes", {}),
        **fields,
    }


def test_without_agent_io_the_case_takes_the_first_llm_input_and_the_last_llm_output() -> None:
    spans = [
        span("01", "2026-01-01T00:00:00.1Z", "workflow"),  # Traceloop: no agent span
        span("02", "2026-01-01T00:00:00.2Z", "chat"),  # captured nothing
        span("03", "2026-01-01T00:00:00.3Z", "chat", attributes={"input.value": "first"}),
        span(
            "04",
            "2026-01-01T00:00:00.4Z",
            "chat",
            attributes={
                "gen_ai.prompt.0.role": "user",
                "gen_ai.prompt.0.content": "second",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "last",
            },
        ),
        span(
            "05",
            "2026-01-01T00:00:00.5Z",
            "execute_tool",
            tool_name="kb.search",
            attributes={"traceloop.entity.input": '{"q": "x"}', "output.value": "not json {"},
        ),
    ]
    case = build_case({"trace_id": "f" * 32, "spans": spans}, [], [])

    assert (case["input"], case["output"]) == ("first", [{"role": "assistant", "content": "last"}])
    assert case["started_at"] == "2026-01-01T00:00:00.1Z"
    assert case["tool_calls"] == [
        {
            "name": "kb.search",
            "arguments": {"q": "x"},
            "result": "not json {",
            "status": "ok",
            "error_type": None,
            "span_id": "05",
        }
    ]
    assert len(case["llm_calls"]) == 3


def test_a_run_that_captured_nothing_has_null_input_and_output() -> None:
    spans = [span("01", "2026-01-01T00:00:00Z", "invoke_agent", agent_name="a")]
    case = build_case({"trace_id": "f" * 32, "spans": spans}, [], [])

    assert (case["agent"], case["input"], case["output"]) == ("a", None, None)
    assert (case["tool_calls"], case["llm_calls"], case["scores"]) == ([], [], [])


def test_llm_calls_are_the_operations_ingest_counts_as_llm_calls() -> None:
    assert LLM_OPERATIONS == INGEST_LLM_OPERATIONS  # a copy: the command never imports ingest


def test_a_finding_that_names_no_runs_writes_nothing_and_says_so(tmp_path: Path) -> None:
    behaviour = {
        "id": "f1",
        "kind": "quality_drift",
        "severity": "warning",
        "summary": "runs behave differently",
        "trace_id": "",
        "evidence": {"signal": "behaviour"},
    }

    def fake_api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/findings/f1":
            return httpx.Response(200, json=behaviour)
        return httpx.Response(404, json={"detail": "not found"})

    out, err = io.StringIO(), io.StringIO()
    options = options_from_args(
        argparse.Namespace(
            finding="f1",
            agent=None,
            since=None,
            until=None,
            out=str(tmp_path / "x.jsonl"),
            api="http://agentwatch.test",
            data_dir=None,
            token=None,
        ),
        {},
    )
    status = export(options, httpx.MockTransport(fake_api), stdout=out, err=err)

    assert status == 1
    assert err.getvalue().splitlines() == [
        "agentwatch export-evalset: finding f1 (quality_drift, behaviour) names no runs",
        "agentwatch export-evalset: nothing to write",
    ]
    assert out.getvalue() == ""
    assert not (tmp_path / "x.jsonl").exists()

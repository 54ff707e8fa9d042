"""`agentwatch agents`, `agentwatch findings`, `agentwatch trace` against a live agentwatch.

A real agentwatch (in a thread, chDB in a temp dir, API tokens on) takes real OTel SDK
traffic over OTLP/gRPC: billing-agent's example run (`examples/send_agent_trace.py`),
and support-agent's runs — one looping on `crm.lookup` (a runaway_loop finding, resolved
when the run ends), one still looping on `kb.search` (an open finding) and one failed.
Each command runs once as a real subprocess (they start together: importing agentwatch
takes seconds), the rest in-process through `agentwatch.cli.main`. Captured output is
not a terminal, so it is plain text unless the test forces colour.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agentwatch_sdk import PendingSpanProcessor, configure, heartbeat, tool_call
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from agentwatch import _commands
from agentwatch.cli import main
from examples.send_agent_trace import make_exporter, send_agent_run
from tests.harness import AgentwatchThread, http, make_settings, wait_for

TOKEN = "cli-token"
OTHER_TOKEN = "other-tenant-token"  # sees nothing
CONFIG = """
detectors:
  runaway_loop:
    max_repeats: 3
  zombie_run:
    min_idle: 10m
"""
EVALUATION: dict[str, str | float] = {
    "gen_ai.evaluation.name": "helpfulness",
    "gen_ai.evaluation.score.value": 0.25,
    "gen_ai.evaluation.score.label": "bad",
}


class SupportAgent:
    """support-agent: pending markers and heartbeats (agentwatch_sdk), batched OTLP/gRPC."""

    def __init__(self, endpoint: str) -> None:
        resource = Resource.create({"service.name": "support-svc", "agent.owner": "team-help"})
        self.provider = TracerProvider(resource=resource)
        batch = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=100
        )
        self.provider.add_span_processor(PendingSpanProcessor(batch))
        self.tracer = self.provider.get_tracer("agent.loop")
        configure(tracer_provider=self.provider)
        self.stuck: trace.Span | None = None

    def _root(self, conversation: str) -> trace.Span:
        return self.tracer.start_span(
            "invoke_agent support-agent",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "support-agent",
                "gen_ai.conversation.id": conversation,
            },
        )

    def _chat(self) -> None:
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 50,
            "gen_ai.usage.output_tokens": 12,
        }
        with self.tracer.start_as_current_span("chat gpt-4o", attributes=attributes):
            pass

    def looping_run(self) -> str:
        """chat, crm.lookup x4 with the same arguments (the first calls the CRM, the last
        times out), a heartbeat and an evaluation score; the run ends."""
        root = self._root("conv-loop")
        with trace.use_span(root, end_on_exit=True):
            heartbeat()
            self._chat()
            for n in range(4):
                try:
                    with tool_call("crm.lookup", arguments={"customer": "c-1"}):
                        if n == 0:
                            with self.tracer.start_as_current_span(
                                "GET /crm/customers/c-1", kind=SpanKind.CLIENT
                            ):
                                pass
                        if n == 3:
                            raise TimeoutError("crm did not answer")
                except TimeoutError:
                    pass
            root.add_event("gen_ai.evaluation.result", EVALUATION)
        return format(root.get_span_context().trace_id, "032x")

    def stuck_run(self) -> str:
        """kb.search x3 with the same arguments, inside a run that has not ended."""
        self.stuck = self._root("conv-stuck")
        with trace.use_span(self.stuck, end_on_exit=False):
            for _ in range(3):
                with tool_call("kb.search", arguments={"q": "refund policy"}):
                    pass
        self.provider.force_flush()
        return format(self.stuck.get_span_context().trace_id, "032x")

    def failed_run(self) -> None:
        root = self._root("conv-failed")
        with trace.use_span(root, end_on_exit=True):
            self._chat()
            root.set_status(Status(StatusCode.ERROR, "gave up"))

    def shutdown(self) -> None:
        if self.stuck is not None:
            self.stuck.end()
        self.provider.shutdown()
        configure()


@dataclass
class Scenario:
    api: str
    data_dir: Path
    billing: str  # billing-agent's example run: its second tool call failed
    looping: str  # support-agent's looping run, ended
    stuck: str  # support-agent's run still looping
    findings: dict[str, dict[str, Any]]  # tool -> its runaway_loop finding


def api_get(api: str, path: str, **params: Any) -> Any:
    response = http().get(
        f"{api}{path}", params=params, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def runaway(api: str, trace_id: str, state: str) -> dict[str, Any] | None:
    found = api_get(api, "/api/v1/findings", kind="runaway_loop", trace_id=trace_id)["findings"]
    return next((f for f in found if f["state"] == state), None)


def stored(api: str, trace_id: str, spans: int) -> bool:
    response = http().get(
        f"{api}/api/v1/traces/{trace_id}",
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    return response.status_code == 200 and len(response.json()["spans"]) == spans


def agents_ready(api: str) -> bool:
    by_name = {a["name"]: a for a in api_get(api, "/api/v1/agents")["agents"]}
    support = by_name.get("support-agent")
    return "billing-agent" in by_name and support is not None and support["failed_runs"] == 1


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("cli")
    config = root / "agentwatch.yaml"
    config.write_text(CONFIG)
    data_dir = root / "data"
    settings = make_settings(
        data_dir, config=config, api_tokens={TOKEN: "default", OTHER_TOKEN: "other"}
    )
    with AgentwatchThread(settings) as running:
        api = running.endpoints.api
        billing = send_agent_run(make_exporter(False, running.grpc_target, None))
        support = SupportAgent(running.grpc_target)
        try:
            looping = support.looping_run()
            support.failed_run()
            # Findings are ordered by their opening: the first must open before the next.
            first = wait_for(lambda: runaway(api, looping, "resolved"), timeout_s=60)
            stuck = support.stuck_run()
            found = {
                "crm.lookup": first,
                "kb.search": wait_for(lambda: runaway(api, stuck, "open"), timeout_s=60),
            }
            wait_for(lambda: stored(api, looping, 7), timeout_s=60)  # agent, chat, 4 tools, GET
            wait_for(lambda: stored(api, billing, 4), timeout_s=60)
            wait_for(lambda: agents_ready(api), timeout_s=60)
            yield Scenario(api, data_dir, billing, looping, stuck, found)
        finally:
            support.shutdown()


# -- helpers ----------------------------------------------------------------------------


def rows(table: str) -> list[list[str]]:
    """A plain-text table's lines split into cells (two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.strip()]


def row_of(table: str, first: str) -> list[str]:
    [row] = [r for r in rows(table) if r[0] == first]
    return row


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def piped(scenario: Scenario) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each command as `python -m agentwatch.cli ...`, its output a pipe, started together."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTWATCH_", "OTEL_"))}
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE")}
    with_api = ("--api", scenario.api)
    commands = {
        "agents": ["agents", *with_api, "--token", TOKEN],
        "findings": ["findings", *with_api],  # the token from AGENTWATCH_API_TOKEN
        "trace": ["trace", scenario.looping, "--data-dir", str(scenario.data_dir)],
        "missing": ["trace", "0" * 32, *with_api],
    }
    env["AGENTWATCH_API_TOKEN"] = TOKEN
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "agentwatch.cli", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, argv in commands.items()
    }
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


# -- agents -----------------------------------------------------------------------------


def test_agents_lists_each_agent_with_runs_success_tokens_and_open_findings(
    scenario: Scenario, piped: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = piped["agents"]

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # plain text into a pipe
    table = rows(done.stdout)
    assert table[0] == [
        "AGENT",
        "SERVICE",
        "OWNER",
        "RUNS",
        "FAILED",
        "SUCCESS",
        "TOKENS",
        "OPEN FINDINGS",
        "LAST SEEN",
    ]
    assert [r[0] for r in table[1:]] == ["support-agent", "billing-agent"]  # latest first
    billing = row_of(done.stdout, "billing-agent")
    assert billing[1:8] == ["billing-service", "team-pay", "1", "0", "100%", "876", "0"]
    assert re.fullmatch(r"(\d+[smh] ago|just now)", billing[8])
    support = row_of(done.stdout, "support-agent")
    agent = {a["name"]: a for a in api_get(scenario.api, "/api/v1/agents")["agents"]}
    runs = agent["support-agent"]["runs"]
    assert runs >= 2
    assert support[1:8] == [
        "support-svc",
        "team-help",
        str(runs),
        "1",
        _commands.percent((runs - 1) / runs),
        "124",  # two chat calls of 50 + 12
        "1",  # kb.search is still looping
    ]


def test_agents_json_is_the_apis_answer(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_main(capsys, "agents", "--api", scenario.api, "--token", TOKEN, "--json")

    assert status == 0
    assert json.loads(out) == api_get(scenario.api, "/api/v1/agents", since="7d")


def test_agents_of_another_tenant_are_not_shown(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(capsys, "agents", "--api", scenario.api, "--token", OTHER_TOKEN)

    assert status == 0
    assert out == ""
    assert err == "agentwatch agents: no agents seen since 7d\n"


# -- findings ---------------------------------------------------------------------------


def test_findings_lists_state_severity_kind_agent_tool_summary_and_short_id(
    scenario: Scenario, piped: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = piped["findings"]

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    header, *table = rows(done.stdout)
    assert header == ["OPENED", "STATE", "SEVERITY", "KIND", "AGENT", "TOOL", "SUMMARY", "ID"]
    by_tool = {r[5]: r for r in table if r[3] == "runaway_loop"}
    assert set(by_tool) == {"crm.lookup", "kb.search"}
    for tool, finding in scenario.findings.items():
        opened, state, severity, kind, agent, _, summary, short_id = by_tool[tool]
        assert re.fullmatch(r"(\d+[smh] ago|just now)", opened)
        assert (state, severity, kind, agent) == (
            finding["state"],
            finding["severity"],
            "runaway_loop",
            "support-agent",
        )
        assert summary == finding["summary"]  # piped: never cut
        assert short_id == finding["id"][:8]
    assert by_tool["crm.lookup"][1] == "resolved"
    assert by_tool["kb.search"][1] == "open"


def test_findings_open_with_full_ids(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_main(
        capsys,
        "findings",
        "--open",
        "--kind",
        "runaway_loop",
        "--ids",
        "--api",
        scenario.api,
        "--token",
        TOKEN,
    )

    assert status == 0, err
    [row] = rows(out)[1:]
    assert (row[1], row[5], row[7]) == ("open", "kb.search", scenario.findings["kb.search"]["id"])


def test_findings_filter_by_kind_and_agent_and_json_is_the_apis_answer(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = ("--api", scenario.api, "--token", TOKEN)
    _, none_out, none_err = run_main(capsys, "findings", "--agent", "billing-agent", *auth)
    _, other_out, _ = run_main(capsys, "findings", "--kind", "zombie_run", "scope_violation", *auth)
    status, out, _ = run_main(
        capsys,
        "findings",
        "--kind",
        "runaway_loop",
        "--agent",
        "support-agent",
        "--limit",
        "1",
        "--json",
        *auth,
    )

    assert (none_out, none_err) == ("", "agentwatch findings: no findings since 24h\n")
    assert other_out == ""
    assert status == 0
    answer = api_get(
        scenario.api,
        "/api/v1/findings",
        kind="runaway_loop",
        agent="support-agent",
        since="24h",
        limit=1,
    )
    assert json.loads(out) == answer
    assert [f["tool_name"] for f in answer["findings"]] == ["kb.search"]  # the newest


def test_findings_summary_is_cut_to_the_terminal_width(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    status, out, err = run_main(
        capsys, "findings", "--kind", "runaway_loop", "--api", scenario.api, "--token", TOKEN
    )

    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 3  # the header and two findings, one line each
    assert max(len(line) for line in lines) <= 120
    summaries = {row[5]: row[6] for row in rows(out)[1:]}
    for tool, finding in scenario.findings.items():
        assert summaries[tool].endswith("…")
        assert len(summaries[tool]) > 20
        assert finding["summary"].startswith(summaries[tool][:-1])


# -- trace ------------------------------------------------------------------------------


def name_column(line: str) -> tuple[int, str]:
    """Where a tree line's text starts (after its guides), and the text."""
    match = re.match(r"^([\s│├└─]*)(.*)$", line)
    assert match is not None
    return len(match.group(1)), match.group(2)


def test_trace_prints_the_tree_with_events_errors_tools_models_and_tokens(
    scenario: Scenario, piped: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = piped["trace"]  # the API address from the data dir's endpoints.json

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    header, columns, *tree = done.stdout.splitlines()
    assert header.startswith(f"trace {scenario.looping}  support-agent  started ")
    assert header.endswith("  7 spans  1 error")
    assert columns.split() == [
        "SPAN",
        "OPERATION",
        "DURATION",
        "STATUS",
        "TOOL/MODEL",
        "TOKENS",
        "IN/OUT",
    ]
    lines = [(*name_column(line), line) for line in tree]
    names = [text.split("  ")[0] for _, text, _ in lines]
    assert names == [
        "invoke_agent support-agent",
        "◆ helpfulness 0.25 (bad)",
        "chat gpt-4o",
        "execute_tool crm.lookup",
        "GET /crm/customers/c-1",
        "execute_tool crm.lookup",
        "execute_tool crm.lookup",
        "execute_tool crm.lookup",
        "◆ TimeoutError: crm did not answer",
    ]
    guides = [line[:indent] for indent, _, line in lines]  # the nesting, as drawn
    assert guides == ["", "│  ", "├─ ", "├─ ", "│  └─ ", "├─ ", "├─ ", "└─ ", "      "]
    chat = lines[2][2].split()
    assert chat[-3:] == ["ok", "gpt-4o", "50/12"]
    assert "evaluation" in lines[1][2]
    failed = lines[7][2]
    assert re.search(r"execute_tool\s+\S+\s+error TimeoutError\s+crm\.lookup$", failed)
    assert all("error" not in line for _, _, line in lines[:7])
    assert "agentwatch.heartbeat" not in done.stdout  # markers only with --markers


def test_trace_markers_and_json_are_the_apis_answer(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = ("--api", scenario.api, "--token", TOKEN)
    status, out, _ = run_main(capsys, "trace", scenario.looping, "--markers", *auth)
    _, plain_json, _ = run_main(capsys, "trace", scenario.looping, "--json", *auth)
    _, markers_json, _ = run_main(
        capsys, "trace", scenario.looping.upper(), "--json", "--markers", *auth
    )

    assert status == 0
    [heartbeat_line] = [line for line in out.splitlines() if "agentwatch.heartbeat" in line]
    assert heartbeat_line.startswith("├─ agentwatch.heartbeat")
    assert "(heartbeat)" in heartbeat_line
    path = f"/api/v1/traces/{scenario.looping}"
    assert json.loads(plain_json) == api_get(scenario.api, path)
    with_markers = api_get(scenario.api, path, markers="true")
    assert json.loads(markers_json) == with_markers
    assert len(with_markers["spans"]) > len(json.loads(plain_json)["spans"])


def test_an_error_status_without_an_exception_event_is_shown_under_its_span(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_main(
        capsys, "trace", scenario.billing, "--api", scenario.api, "--token", TOKEN
    )

    assert status == 0
    *_, failed, note = out.splitlines()
    assert failed.startswith("└─ execute_tool lookup_invoice")
    assert "error TimeoutError" in failed
    assert note.startswith("      ◆ upstream timed out  ")  # under the last child
    assert note.endswith("status")


def test_an_error_span_is_red_on_a_terminal(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("NO_COLOR", raising=False)
    status, out, _ = run_main(
        capsys, "trace", scenario.looping, "--api", scenario.api, "--token", TOKEN
    )

    assert status == 0
    [failed] = [
        line for line in out.splitlines() if "TimeoutError" in line and "execute_tool" in line
    ]
    assert re.search(r"\x1b\[1;31merror TimeoutError\x1b\[0m", failed)
    [chat] = [line for line in out.splitlines() if "chat gpt-4o" in line]
    assert "31m" not in chat


# -- errors -----------------------------------------------------------------------------


def test_an_unknown_trace_is_one_line_and_exit_2(
    scenario: Scenario, piped: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    done = piped["missing"]

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"agentwatch trace: trace {'0' * 32} not found at {scenario.api}"
    ]


def unreachable_api() -> str:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["agents"], "refused the request (HTTP 401): give its token with --token or"),
        (["findings", "--token", "wrong"], "refused the request (HTTP 401)"),
        (["trace", "xyz", "--token", TOKEN], "'xyz' is not a trace id (32 hex characters)"),
        (["findings", "--since", "yesterday", "--token", TOKEN], "--since: 'yesterday' is not"),
        (["findings", "--limit", "0", "--token", TOKEN], "--limit: give 1 to 1000"),
        (["agents", "--api", "127.0.0.1:8000"], "'127.0.0.1:8000' is not an http:// or https://"),
    ],
)
def test_bad_requests_are_one_line_and_exit_2(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run_main(
        capsys, *argv, *(["--api", scenario.api] if "--api" not in argv else [])
    )

    assert status == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"agentwatch {argv[0]}: ")
    assert message in line


@pytest.mark.parametrize("command", [["agents"], ["findings"], ["trace", "a" * 32]])
def test_an_unreachable_api_is_one_line_and_exit_2(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    url = unreachable_api()
    status, out, err = run_main(capsys, *command, "--api", url)

    assert status == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"agentwatch {command[0]}: cannot reach the agentwatch API at {url}")


# -- formatting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (850, "850ns"),
        (45_000, "45µs"),
        (3_140_000, "3.1ms"),
        (812_000_000, "812ms"),
        (1_204_000_000, "1.20s"),
        (130_000_000_000, "2m10s"),
        (3_720_000_000_000, "1h02m"),
    ],
)
def test_durations_read_at_a_glance(ns: int, text: str) -> None:
    assert _commands.duration(ns) == text


def test_times_are_relative_to_now() -> None:
    now = _commands._time("2026-11-24T12:00:00Z")

    assert _commands.ago("2026-11-24T11:55:59.123456789Z", now) == "4m ago"
    assert _commands.ago("2026-11-24T11:59:59.5Z", now) == "just now"
    assert _commands.ago("2026-11-22T09:00:00Z", now) == "2d ago"
    assert _commands.ago("2026-11-24T12:00:05Z", now) == "in 5s"
    assert _commands.percent(None) == "-"
    assert _commands.percent(0.975) == "97.5%"

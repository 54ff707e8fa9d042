"""The query API over real OTel SDK traffic: agents, scorecards, tools, the audit trail,
trace filters and pages, time series — and each tenant sees only its own.

One agentwatch for the module, seeded once with a small, exactly known fleet:

- acme / support-agent (service support-api, owner team-support): runs s-1..s-4, each
  a chat (100 in / 10 out tokens), crm.lookup (ok) and kb.search (Timeout in s-1 and
  s-2); s-4's agent span ends in error; helpfulness scores 0.9, 0.8, 0.7, 0.6 as span
  events, and one groundedness score (0.5) as an OTLP log record on s-1's trace.
- acme / billing-agent (service billing-svc, service.owner team-pay): runs b-1, b-2,
  each one payments.get call by end user u-7.
- globex / research-agent: one run with web.search.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry._logs import LogRecord
from opentelemetry.context import get_current
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, Status, StatusCode, Tracer

from ingest._prices import PriceTable
from tests.harness import AgentwatchThread, http, make_settings, wait_for

ACME, GLOBEX = "read-acme", "read-globex"
TOOL_CALLS_ACME = 10  # 4 runs x 2 + 2 runs x 1


class Fleet:
    """Sends one tenant's agents through the real SDK exporters (gRPC, with its token)."""

    def __init__(self, endpoint: str, token: str) -> None:
        self.endpoint = endpoint
        self.headers = (("authorization", f"Bearer {token}"),)
        self.providers: list[TracerProvider] = []
        self.trace_ids: dict[str, str] = {}  # run id -> trace id

    def tracer(self, resource: dict[str, str]) -> Tracer:
        provider = TracerProvider(resource=Resource.create(resource))
        exporter = OTLPSpanExporter(endpoint=self.endpoint, insecure=True, headers=self.headers)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.providers.append(provider)
        return provider.get_tracer("test.fleet")

    def run(self, tracer: Tracer, agent: str, run: str, steps: list[dict[str, Any]]) -> None:
        failed = any(step.get("agent_error") for step in steps)
        with tracer.start_as_current_span(
            f"invoke_agent {agent}",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": agent,
                "gen_ai.conversation.id": run,
            },
        ) as root:
            self.trace_ids[run] = format(root.get_span_context().trace_id, "032x")
            for step in steps:
                if "tool" in step:
                    self._tool(tracer, step)
                elif "chat" in step:
                    self._chat(tracer, **(step["chat"] if isinstance(step["chat"], dict) else {}))
                elif "score" in step:
                    root.add_event(
                        "gen_ai.evaluation.result",
                        {
                            "gen_ai.evaluation.name": "helpfulness",
                            "gen_ai.evaluation.score.value": step["score"],
                        },
                    )
                elif "log_score" in step:
                    self.evaluation_log(step["log_score"])
            if failed:
                root.set_status(Status(StatusCode.ERROR, "gave up"))

    @staticmethod
    def _chat(
        tracer: Tracer,
        model: str = "gpt-4o-2024-08-06",
        input_tokens: int = 100,
        output_tokens: int = 10,
    ) -> None:
        """An LLM call; a step `{"chat": {"model": …, "input_tokens": …}}` overrides these."""
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": model,
                "gen_ai.usage.input_tokens": input_tokens,
                "gen_ai.usage.output_tokens": output_tokens,
            },
        ):
            pass

    def _tool(self, tracer: Tracer, step: dict[str, Any]) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": step["tool"],
            "gen_ai.tool.call.arguments": '{"q": "x"}',
        }
        if "user" in step:
            attributes["enduser.id"] = step["user"]
        if "error" in step:
            attributes["error.type"] = step["error"]
        links = [Link(tracer.start_span("queued").get_span_context())] if "link" in step else []
        with tracer.start_as_current_span(
            f"execute_tool {step['tool']}", attributes=attributes, links=links
        ) as span:
            if "error" in step:
                span.set_status(Status(StatusCode.ERROR, step["error"]))

    def evaluation_log(self, score: float) -> None:
        logs = LoggerProvider(resource=Resource.create({"service.name": "support-api"}))
        exporter = OTLPLogExporter(endpoint=self.endpoint, insecure=True, headers=self.headers)
        logs.add_log_record_processor(SimpleLogRecordProcessor(exporter))
        logs.get_logger("evaluator").emit(
            LogRecord(
                event_name="gen_ai.evaluation.result",
                context=get_current(),
                attributes={
                    "gen_ai.evaluation.name": "groundedness",
                    "gen_ai.evaluation.score.value": score,
                },
            )
        )
        logs.shutdown()

    def shutdown(self) -> None:
        for provider in self.providers:
            provider.shutdown()


def _seed(running: AgentwatchThread) -> dict[str, str]:
    acme = Fleet(running.grpc_target, "ingest-acme")
    support = acme.tracer({"service.name": "support-api", "agent.owner": "team-support"})
    for n, score in enumerate([0.9, 0.8, 0.7, 0.6], start=1):
        kb: dict[str, Any] = {"tool": "kb.search"}
        if n <= 2:
            kb["error"] = "Timeout"
        steps: list[dict[str, Any]] = [{"chat": True}, {"tool": "crm.lookup", "link": n == 1}, kb]
        steps.append({"score": score})
        if n == 1:
            steps.append({"log_score": 0.5})
        if n == 4:
            steps.append({"agent_error": True})
        acme.run(support, "support-agent", f"s-{n}", steps)
    billing = acme.tracer({"service.name": "billing-svc", "service.owner": "team-pay"})
    for n in (1, 2):
        acme.run(billing, "billing-agent", f"b-{n}", [{"tool": "payments.get", "user": "u-7"}])
    globex = Fleet(running.grpc_target, "ingest-globex")
    research = globex.tracer({"service.name": "research-worker"})
    globex.run(research, "research-agent", "r-1", [{"tool": "web.search"}])
    acme.shutdown()
    globex.shutdown()
    return {**acme.trace_ids, **globex.trace_ids}


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AgentwatchThread, dict[str, str]]]:
    settings = make_settings(
        tmp_path_factory.mktemp("query-api"),
        ingest_tokens={"ingest-acme": "acme", "ingest-globex": "globex"},
        api_tokens={ACME: "acme", GLOBEX: "globex"},
    )
    with AgentwatchThread(settings) as running:
        trace_ids = _seed(running)

        def stored() -> bool:
            calls = _get(running, ACME, "/api/v1/audit/tool-calls", limit=100)["tool_calls"]
            logs = _get(running, ACME, "/api/v1/logs", trace_id=trace_ids["s-1"])["logs"]
            roots = _get(running, ACME, "/api/v1/traces", limit=100)["traces"]
            return len(calls) == TOOL_CALLS_ACME and len(logs) == 1 and len(roots) >= 6

        wait_for(stored, timeout_s=60)
        yield running, trace_ids


def _response(
    running: AgentwatchThread, token: str | None, path: str, **params: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return http().get(f"{running.endpoints.api}{path}", params=params, headers=headers, timeout=30)


def _get(running: AgentwatchThread, token: str, path: str, **params: Any) -> Any:
    response = _response(running, token, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


Seeded = tuple[AgentwatchThread, dict[str, str]]


def test_agents_are_the_registry_built_from_telemetry(seeded: Seeded) -> None:
    running, _ = seeded
    agents = {a["name"]: a for a in _get(running, ACME, "/api/v1/agents")["agents"]}

    assert set(agents) == {"support-agent", "billing-agent"}
    support = agents["support-agent"]
    assert (support["service_name"], support["owner"]) == ("support-api", "team-support")
    assert support["tools"] == ["crm.lookup", "kb.search"]
    assert support["models"] == ["gpt-4o-2024-08-06"]
    assert (support["runs"], support["failed_runs"]) == (4, 1)
    assert support["success_rate"] == 0.75
    assert (support["input_tokens"], support["output_tokens"]) == (400, 40)
    assert (support["tool_calls"], support["tool_failures"]) == (8, 2)
    assert support["tool_failure_rate"] == 0.25
    # Priced by the shipped table in SQL; the Python price table must agree.
    price = PriceTable.load().cost("gpt-4o-2024-08-06", "", time.time_ns(), 100, 10)
    assert price is not None
    assert support["cost_usd"] == pytest.approx(4 * price.total_usd, rel=1e-6)
    assert support["unpriced_llm_calls"] == 0
    assert agents["billing-agent"]["cost_usd"] == 0.0  # no LLM calls
    assert support["first_seen"] <= support["last_seen"]
    billing = agents["billing-agent"]
    assert (billing["owner"], billing["runs"], billing["tools"]) == (
        "team-pay",
        2,
        ["payments.get"],
    )


def test_an_agent_scorecard_sums_its_runs_tools_and_scores(seeded: Seeded) -> None:
    running, _ = seeded
    card = _get(running, ACME, "/api/v1/agents/support-agent", since="1h", step="1h")

    assert (card["runs"], card["failed_runs"], card["success_rate"]) == (4, 1, 0.75)
    assert card["steps_per_run"] == 3.0  # chat + two tool calls
    assert card["cost_per_run_usd"] == pytest.approx(card["cost_usd"] / 4, rel=1e-4)
    assert card["cost_usd"] > 0
    assert (card["tool_calls"], card["tool_failures"], card["tool_failure_rate"]) == (8, 2, 0.25)
    assert 0 < card["run_duration_p50_ns"] <= card["run_duration_p95_ns"]
    scores = card["evaluation_scores"]
    assert set(scores) == {"helpfulness", "groundedness"}
    helpfulness = [p["value"] for p in scores["helpfulness"]]
    assert len(helpfulness) in (1, 2)  # the runs may straddle an hour
    if len(helpfulness) == 1:
        assert helpfulness == [pytest.approx(0.75)]
    assert [p["value"] for p in scores["groundedness"]] == [0.5]  # joined from its trace


def test_a_bad_findings_until_is_400(seeded: Seeded) -> None:
    running, _ = seeded
    bad = _response(running, ACME, "/api/v1/findings", until="someday")
    assert bad.status_code == 400
    assert "until" in bad.json()["detail"]


def test_an_unknown_agent_is_404(seeded: Seeded) -> None:
    running, _ = seeded
    assert _response(running, ACME, "/api/v1/agents/nobody").status_code == 404


def test_tools_report_calls_failures_and_error_types(seeded: Seeded) -> None:
    running, _ = seeded
    tools = _get(running, ACME, "/api/v1/tools")["tools"]

    assert [t["name"] for t in tools] == ["crm.lookup", "kb.search", "payments.get"]
    kb = tools[1]
    assert (kb["calls"], kb["failures"], kb["failure_rate"]) == (4, 2, 0.5)
    assert kb["top_error_types"] == ["Timeout"]
    assert kb["agents"] == ["support-agent"]
    assert 0 < kb["latency_p50_ns"] <= kb["latency_p95_ns"]
    only_billing = _get(running, ACME, "/api/v1/tools", agent="billing-agent")["tools"]
    assert [t["name"] for t in only_billing] == ["payments.get"]


def test_the_audit_trail_pages_through_every_tool_call_once(seeded: Seeded) -> None:
    running, trace_ids = seeded
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = _get(running, ACME, "/api/v1/audit/tool-calls", **params)
        seen += page["tool_calls"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert len(seen) == TOOL_CALLS_ACME
    assert len({call["span_id"] for call in seen}) == TOOL_CALLS_ACME
    assert [c["time"] for c in seen] == sorted((c["time"] for c in seen), reverse=True)
    billing = [c for c in seen if c["agent_name"] == "billing-agent"]
    assert {c["user_id"] for c in billing} == {"u-7"}
    assert {c["run_id"] for c in billing} == {"b-1", "b-2"}
    assert all(len(c["arguments_hash"]) == 16 for c in seen)
    errors = _get(running, ACME, "/api/v1/audit/tool-calls", status="error")["tool_calls"]
    assert {(c["tool_name"], c["error_type"], c["status"]) for c in errors} == {
        ("kb.search", "Timeout", "error")
    }
    assert {c["trace_id"] for c in errors} == {trace_ids["s-1"], trace_ids["s-2"]}


def test_traces_filter_by_tool_text_and_status_and_page(seeded: Seeded) -> None:
    running, trace_ids = seeded

    def ids(**params: Any) -> set[str]:
        return {t["trace_id"] for t in _get(running, ACME, "/api/v1/traces", **params)["traces"]}

    support = {trace_ids[f"s-{n}"] for n in range(1, 5)}
    assert ids(tool="kb.search") == support
    assert ids(q="PAYMENTS") == {trace_ids["b-1"], trace_ids["b-2"]}
    assert ids(status="error") == {trace_ids["s-1"], trace_ids["s-2"], trace_ids["s-4"]}
    assert ids(agent="billing-agent", status="ok") == {trace_ids["b-1"], trace_ids["b-2"]}
    pages: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = _get(running, ACME, "/api/v1/traces", **params)
        pages += [t["trace_id"] for t in page["traces"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    acme_traces = {v for k, v in trace_ids.items() if not k.startswith("r-")}
    assert len(pages) == len(set(pages))
    assert set(pages) == acme_traces


def test_a_trace_comes_as_a_tree_with_links(seeded: Seeded) -> None:
    running, trace_ids = seeded
    trace = _get(running, ACME, f"/api/v1/traces/{trace_ids['s-1']}")

    (root,) = trace["tree"]
    assert root["operation"] == "invoke_agent"
    assert sorted(child["name"] for child in root["children"]) == [
        "chat gpt-4o",
        "execute_tool crm.lookup",
        "execute_tool kb.search",
    ]
    crm = next(s for s in trace["spans"] if s["name"] == "execute_tool crm.lookup")
    assert len(crm["links"]) == 1
    assert len(crm["links"][0]["span_id"]) == 16


def _series(running: AgentwatchThread, metric: str, **params: Any) -> dict[str, float]:
    """Sum of a series' values over its buckets (counts), per series."""
    body = _get(running, ACME, f"/api/v1/timeseries/{metric}", since="2h", **params)
    assert body["metric"] == metric
    totals: dict[str, float] = {}
    for point in body["points"]:
        assert point["time"].endswith("Z")
        totals[point["series"]] = totals.get(point["series"], 0.0) + (point["value"] or 0.0)
    return totals


def test_time_series_count_what_the_tables_count(seeded: Seeded) -> None:
    running, _ = seeded

    assert _series(running, "tool_calls", by="tool", step="1m") == {
        "crm.lookup": 4.0,
        "kb.search": 4.0,
        "payments.get": 2.0,
    }
    assert _series(running, "tool_failures", by="agent", step="1m") == {
        "support-agent": 2.0,
        "billing-agent": 0.0,
    }
    assert _series(running, "runs", by="agent", step="5m") == {
        "support-agent": 4.0,
        "billing-agent": 2.0,
    }
    assert _series(running, "failed_runs", step="5m") == {"": 1.0}
    assert _series(running, "tokens", agent="support-agent", step="1h") == {"": 440.0}
    scores = _series(running, "evaluation_score", by="evaluation", agent="support-agent", step="1d")
    assert scores == {"helpfulness": pytest.approx(0.75), "groundedness": 0.5}
    assert _series(running, "findings_opened", by="kind") == {}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/timeseries/runs", {"by": "tool"}),
        ("/api/v1/timeseries/tool_calls", {"by": "evaluation"}),
        ("/api/v1/timeseries/tool_calls", {"step": "soon"}),
        ("/api/v1/timeseries/tool_calls", {"step": "1s", "since": "30d"}),
        ("/api/v1/timeseries/nonsense", {}),
        ("/api/v1/traces", {"cursor": "not-a-cursor"}),
        ("/api/v1/tools", {"since": "yesterday-ish"}),
        ("/api/v1/tools", {"since": "67770000000000000000"}),  # found by the fuzz run
        ("/api/v1/audit/tool-calls", {"since": "1h", "until": "2h"}),
    ],
)
def test_bad_parameters_are_a_clear_4xx(seeded: Seeded, path: str, params: dict[str, Any]) -> None:
    running, _ = seeded
    response = _response(running, ACME, path, **params)

    assert response.status_code in (400, 422), response.text
    assert response.json()["detail"]


def test_each_tenant_sees_only_its_own_agents_tools_and_calls(seeded: Seeded) -> None:
    running, _ = seeded

    agents = _get(running, GLOBEX, "/api/v1/agents")["agents"]
    assert [a["name"] for a in agents] == ["research-agent"]
    assert [t["name"] for t in _get(running, GLOBEX, "/api/v1/tools")["tools"]] == ["web.search"]
    calls = _get(running, GLOBEX, "/api/v1/audit/tool-calls")["tool_calls"]
    assert {(c["tenant"], c["tool_name"]) for c in calls} == {("globex", "web.search")}
    assert _response(running, GLOBEX, "/api/v1/agents/support-agent").status_code == 404
    series = _get(running, GLOBEX, "/api/v1/timeseries/tool_calls", by="tool", since="2h")
    assert {p["series"] for p in series["points"]} == {"web.search"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/agents",
        "/api/v1/agents/support-agent",
        "/api/v1/tools",
        "/api/v1/audit/tool-calls",
        "/api/v1/timeseries/runs",
        "/api/v1/logs",
    ],
)
def test_every_endpoint_needs_a_token(seeded: Seeded, path: str) -> None:
    running, _ = seeded
    assert _response(running, None, path).status_code == 401
    assert _response(running, "wrong", path).status_code == 401

"""Cost rollups and ROI over real OTel SDK traffic: tool chain cost, trace cost, the cost
time series, the scorecard's costliest runs and its ROI — each against a hand
computation from the shipped price table.

One agentwatch for the module, with job descriptions, seeded once (tenant acme):

- support-agent (roi: 12 human minutes per run at $60/h): runs s-1..s-4, each a chat on
  gpt-4o-2024-08-06 (1000 in / 200 out) followed by two tool calls, crm.lookup and
  kb.search; s-1 then makes a second chat on gpt-4o-mini-2024-07-18 (2000 in / 100 out)
  followed by one more kb.search; s-4's agent span ends in error.
- triage-agent (roi: 5 human minutes per run, no value per hour): runs t-1, t-2, each a
  chat on a model no price matches (50 in / 5 out), then ticket.create.
- research-agent (no job description): run r-1, a gpt-4o-mini chat (2000 in / 100 out),
  then web.search.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api._roi import agent_roi
from detectors._jobs import JobsError, Roi, load_jobs
from ingest._prices import PriceTable
from tests.harness import AgentwatchThread, make_settings, wait_for
from tests.test_query_api import Fleet, _get, _response

TOKEN = "read-acme"
JOBS = """
agents:
  - name: support-agent
    owner: team-support
    roi: {human_minutes_per_run: 12, value_per_hour_usd: 60}
  - name: triage-agent
    owner: team-triage
    roi: {human_minutes_per_run: 5}
"""
GPT_4O = {"model": "gpt-4o-2024-08-06", "input_tokens": 1000, "output_tokens": 200}
MINI = {"model": "gpt-4o-mini-2024-07-18", "input_tokens": 2000, "output_tokens": 100}
UNPRICED = {"model": "house-model-x", "input_tokens": 50, "output_tokens": 5}
TOOL_CALLS = 4 * 2 + 1 + 2 + 1


def usd(chat: dict[str, Any]) -> float:
    """The chat's cost by hand: tokens times the shipped per-1M-token rates."""
    price = PriceTable.load().find(chat["model"], "", time.time_ns())
    assert price is not None, chat["model"]
    return float(chat["input_tokens"] * price.input + chat["output_tokens"] * price.output) / 1e6


def _seed(running: AgentwatchThread) -> dict[str, str]:
    fleet = Fleet(running.grpc_target, "ingest-acme")
    support = fleet.tracer({"service.name": "support-api"})
    for n in range(1, 5):
        steps: list[dict[str, Any]] = [
            {"chat": GPT_4O},
            {"tool": "crm.lookup"},
            {"tool": "kb.search"},
        ]
        if n == 1:
            steps += [{"chat": MINI}, {"tool": "kb.search"}]
        if n == 4:
            steps.append({"agent_error": True})
        fleet.run(support, "support-agent", f"s-{n}", steps)
    triage = fleet.tracer({"service.name": "triage-svc"})
    for n in (1, 2):
        fleet.run(triage, "triage-agent", f"t-{n}", [{"chat": UNPRICED}, {"tool": "ticket.create"}])
    research = fleet.tracer({"service.name": "research-svc"})
    fleet.run(research, "research-agent", "r-1", [{"chat": MINI}, {"tool": "web.search"}])
    fleet.shutdown()
    return fleet.trace_ids


Seeded = tuple[AgentwatchThread, dict[str, str]]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    directory = tmp_path_factory.mktemp("cost-api")
    agents = directory / "agents.yaml"
    agents.write_text(JOBS)
    settings = make_settings(
        directory / "data",
        ingest_tokens={"ingest-acme": "acme"},
        api_tokens={TOKEN: "acme"},
        agents=agents,
    )
    with AgentwatchThread(settings) as running:
        trace_ids = _seed(running)

        def stored() -> bool:
            calls = _get(running, TOKEN, "/api/v1/audit/tool-calls", limit=100)["tool_calls"]
            traces = _get(running, TOKEN, "/api/v1/traces", limit=100)["traces"]
            return len(calls) == TOOL_CALLS and len(traces) == len(trace_ids)

        wait_for(stored, timeout_s=60)
        yield running, trace_ids


def get(running: AgentwatchThread, path: str, **params: Any) -> Any:
    return _get(running, TOKEN, path, **params)


def test_a_tool_costs_its_share_of_the_llm_calls_that_led_to_it(seeded: Seeded) -> None:
    running, _ = seeded
    tools = {t["name"]: t for t in get(running, "/api/v1/tools")["tools"]}

    # Each support run's gpt-4o chat led to two tool calls: half each. s-1's mini chat
    # led to one kb.search alone.
    assert tools["crm.lookup"]["cost_usd"] == pytest.approx(4 * usd(GPT_4O) / 2, abs=1e-6)
    assert tools["kb.search"]["cost_usd"] == pytest.approx(
        4 * usd(GPT_4O) / 2 + usd(MINI), abs=1e-6
    )
    assert (tools["crm.lookup"]["llm_calls"], tools["kb.search"]["llm_calls"]) == (4, 5)
    assert (tools["ticket.create"]["cost_usd"], tools["ticket.create"]["llm_calls"]) == (0.0, 2)
    assert tools["web.search"]["cost_usd"] == pytest.approx(usd(MINI), abs=1e-6)
    # Every LLM call here led to a tool call, so the chains add up to the agents' cost.
    agents = get(running, "/api/v1/agents")["agents"]
    assert sum(t["cost_usd"] for t in tools.values()) == pytest.approx(
        sum(a["cost_usd"] for a in agents), abs=1e-5
    )


def test_a_tool_filtered_by_agent_keeps_its_share(seeded: Seeded) -> None:
    running, _ = seeded
    tools = get(running, "/api/v1/tools", agent="research-agent")["tools"]

    assert [(t["name"], t["llm_calls"]) for t in tools] == [("web.search", 1)]
    assert tools[0]["cost_usd"] == pytest.approx(usd(MINI), abs=1e-6)


def test_a_trace_costs_the_sum_of_its_llm_spans(seeded: Seeded) -> None:
    running, trace_ids = seeded
    traces = {t["trace_id"]: t for t in get(running, "/api/v1/traces", limit=100)["traces"]}

    s1, s2 = traces[trace_ids["s-1"]], traces[trace_ids["s-2"]]
    assert s1["cost_usd"] == pytest.approx(usd(GPT_4O) + usd(MINI), abs=1e-6)
    assert s2["cost_usd"] == pytest.approx(usd(GPT_4O), abs=1e-6)
    triage = traces[trace_ids["t-1"]]
    assert (triage["cost_usd"], triage["unpriced_llm_calls"]) == (0.0, 1)
    assert s1["unpriced_llm_calls"] == 0


def _series(running: AgentwatchThread, **params: Any) -> dict[str, float]:
    body = get(running, "/api/v1/timeseries/cost", since="2h", **params)
    assert body["metric"] == "cost"
    totals: dict[str, float] = {}
    for point in body["points"]:
        totals[point["series"]] = totals.get(point["series"], 0.0) + (point["value"] or 0.0)
    return totals


def test_the_cost_time_series_adds_up_to_the_agents_cost(seeded: Seeded) -> None:
    running, _ = seeded
    agents = {a["name"]: a["cost_usd"] for a in get(running, "/api/v1/agents")["agents"]}

    by_agent = _series(running, by="agent", step="1d")
    assert by_agent == pytest.approx(agents, abs=1e-5)
    assert by_agent["support-agent"] == pytest.approx(4 * usd(GPT_4O) + usd(MINI), abs=1e-6)
    by_model = _series(running, by="model", step="1h")
    assert by_model == pytest.approx(
        {
            "gpt-4o-2024-08-06": 4 * usd(GPT_4O),
            "gpt-4o-mini-2024-07-18": 2 * usd(MINI),
            "house-model-x": 0.0,
        },
        abs=1e-6,
    )
    assert _series(running, by="service", service="research-svc", step="1d") == pytest.approx(
        {"research-svc": usd(MINI)}, abs=1e-6
    )


@pytest.mark.parametrize(("metric", "by"), [("cost", "tool"), ("runs", "model")])
def test_a_grouping_that_means_nothing_is_a_400(seeded: Seeded, metric: str, by: str) -> None:
    running, _ = seeded
    response = _response(running, TOKEN, f"/api/v1/timeseries/{metric}", by=by)
    assert response.status_code == 400, response.text


def test_the_scorecard_roi_is_the_hand_computation(seeded: Seeded) -> None:
    running, _ = seeded
    card = get(running, "/api/v1/agents/support-agent", since="1h")
    roi = card["roi"]

    cost = 4 * usd(GPT_4O) + usd(MINI)
    # 3 successful runs of 4, 12 human minutes each, at $60/h.
    assert (roi["runs"], roi["successful_runs"], roi["success_rate"]) == (4, 3, 0.75)
    assert (roi["human_minutes_per_run"], roi["value_per_hour_usd"]) == (12, 60)
    assert roi["time_saved_hours"] == 0.6  # 3 x 12 / 60
    assert roi["value_usd"] == 36.0  # 0.6 x 60
    assert roi["cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert roi["cost_usd"] == card["cost_usd"]
    assert roi["cost_per_successful_run_usd"] == pytest.approx(cost / 3, abs=1e-6)
    assert roi["net_value_usd"] == pytest.approx(36.0 - cost, abs=1e-6)
    assert (roi["missing"], roi["unpriced_llm_calls"]) == ([], 0)
    assert "3 * 12 / 60 = 0.6" in roi["formula"]
    assert "0.6 * 60 = 36" in roi["formula"]
    assert card["job"]["roi"] == {"human_minutes_per_run": 12.0, "value_per_hour_usd": 60.0}


def test_roi_claims_nothing_from_inputs_not_stated(seeded: Seeded) -> None:
    running, _ = seeded
    triage = get(running, "/api/v1/agents/triage-agent", since="1h")["roi"]

    assert triage["missing"] == ["value_per_hour_usd"]
    assert triage["time_saved_hours"] == round(2 * 5 / 60, 6)
    assert (triage["value_usd"], triage["net_value_usd"], triage["value_per_hour_usd"]) == (
        None,
        None,
        None,
    )
    assert (triage["cost_usd"], triage["unpriced_llm_calls"]) == (0.0, 2)  # a lower bound
    assert "2 unpriced" in triage["formula"]
    unregistered = get(running, "/api/v1/agents/research-agent", since="1h")["roi"]
    assert unregistered["missing"] == ["human_minutes_per_run", "value_per_hour_usd"]
    assert (unregistered["runs"], unregistered["successful_runs"]) == (1, 1)
    for figure in ("time_saved_hours", "value_usd", "net_value_usd", "human_minutes_per_run"):
        assert unregistered[figure] is None, figure
    assert unregistered["cost_per_successful_run_usd"] == pytest.approx(usd(MINI), abs=1e-6)


def test_the_scorecard_lists_the_costliest_runs(seeded: Seeded) -> None:
    running, trace_ids = seeded
    runs = get(running, "/api/v1/agents/support-agent", since="1h")["costliest_runs"]

    assert runs[0]["run_id"] == "s-1"
    assert {r["run_id"] for r in runs} == {"s-1", "s-2", "s-3", "s-4"}
    assert (runs[0]["trace_id"], runs[0]["llm_calls"]) == (trace_ids["s-1"], 2)
    assert runs[0]["cost_usd"] == pytest.approx(usd(GPT_4O) + usd(MINI), abs=1e-6)
    assert get(running, "/api/v1/agents/triage-agent", since="1h")["costliest_runs"] == []


# -- ROI without a server ----------------------------------------------------------------


def test_roi_with_no_successful_run_has_no_cost_per_successful_run() -> None:
    roi = agent_roi(2, 0, 0.5, 0, Roi(human_minutes_per_run=10, value_per_hour_usd=30))

    assert (roi.time_saved_hours, roi.value_usd, roi.net_value_usd) == (0.0, 0.0, -0.5)
    assert roi.cost_per_successful_run_usd is None
    assert roi.missing == []


@pytest.mark.parametrize(
    ("roi", "setting"),
    [
        ("{human_minutes_per_run: 0}", "roi.human_minutes_per_run"),
        ("{value_per_hour_usd: -1}", "roi.value_per_hour_usd"),
        ("{hours: 2}", "roi.hours"),
    ],
)
def test_a_bad_roi_is_one_line_naming_the_setting(tmp_path: Path, roi: str, setting: str) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(f"agents:\n  - name: a\n    roi: {roi}\n")

    with pytest.raises(JobsError, match=rf"agents\[0\]\.{setting}"):
        load_jobs(path)

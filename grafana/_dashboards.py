"""The four dashboards: Fleet, Agent (`$agent`), Tools and Findings."""

from __future__ import annotations

from grafana._panels import (
    AGENT,
    API,
    BAD_WHEN_ANY,
    BAD_WHEN_HIGH_RATE,
    BAD_WHEN_LOW_RATE,
    TIME_RANGE,
    WARN_WHEN_ANY,
    Json,
    api_query,
    column,
    dashboard_link,
    layout,
    stat,
    table,
    timeseries,
    trace_link,
)

FLEET, AGENT_UID, TOOLS, FINDINGS = (
    "agentwatch-fleet",
    "agentwatch-agent",
    "agentwatch-tools",
    "agentwatch-findings",
)
FROM = "since=${__from:date:iso}"  # findings open at some point since the range's start
TRACE_LINKS = {"trace_id": [trace_link()]}
TO_AGENT = dashboard_link("Agent dashboard", AGENT_UID, "var-agent=${__value.raw}")
TOOL_COLUMNS = [
    ("name", "Tool", "string"),
    ("agents", "Agents", "string"),
    ("calls", "Calls", "number"),
    ("failures", "Failures", "number"),
    ("failure_rate", "Failure rate", "number"),
    ("latency_p50_ns", "Latency p50", "number"),
    ("latency_p95_ns", "Latency p95", "number"),
    ("top_error_types", "Top error types", "string"),
    ("cost_usd", "Cost (tool chain)", "number"),
    ("llm_calls", "LLM calls (tool chain)", "number"),
]
USD = "currencyUSD"
TOOL_UNITS = {
    "failure_rate": "percentunit",
    "latency_p50_ns": "ns",
    "latency_p95_ns": "ns",
    "cost_usd": USD,
}
FINDING_COLUMNS = [
    ("opened_at", "Opened", "timestamp"),
    ("state", "State", "string"),
    ("severity", "Severity", "string"),
    ("kind", "Kind", "string"),
    ("agent_name", "Agent", "string"),
    ("tool_name", "Tool", "string"),
    ("summary", "Summary", "string"),
    ("trace_id", "Trace", "string"),
    ("resolved_at", "Resolved", "timestamp"),
    ("id", "Finding id", "string"),
]


# -- shared pieces -------------------------------------------------------------------------


def findings_annotation(*, per_agent: bool) -> Json:
    """Detector findings as annotations: one where each opened, with its summary."""
    url = f"/api/v1/findings?{FROM}&limit=1000" + (f"&agent={AGENT}" if per_agent else "")
    names = ["summary", "kind", "severity", "agent_name"]
    columns = [column("opened_at", "timestamp"), *map(column, names)]
    return {
        "name": "Findings",
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "datasource": API,
        "target": api_query(url, "findings", columns, ref="Anno", fmt="dataframe"),
        "mappings": {
            "time": {"source": "field", "value": "opened_at"},
            "text": {"source": "field", "value": "summary"},
            "tags": {"source": "field", "value": "kind"},
        },
    }


def agent_variable() -> Json:
    """`$agent`: the agents seen in the time range, from `/api/v1/agents`."""
    query = api_query(f"/api/v1/agents?{TIME_RANGE}", "agents", [column("name")], ref="variable")
    return {
        "name": "agent",
        "label": "Agent",
        "type": "query",
        "datasource": API,
        "query": {
            "queryType": "infinity",
            "refId": "variable",
            "query": "",
            "infinityQuery": query,
        },
        "definition": "agentwatch: /api/v1/agents (name)",
        "refresh": 2,  # on time range change
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
        "regex": "",
        "skipUrlSync": False,
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[Json], *, per_agent: bool = False
) -> Json:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["agentwatch"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "timezone": "",
        "links": [
            {
                "title": "agentwatch",
                "type": "dashboards",
                "tags": ["agentwatch"],
                "asDropdown": False,
                "includeVars": False,
                "keepTime": True,
                "targetBlank": False,
            }
        ],
        "annotations": {"list": [findings_annotation(per_agent=per_agent)]},
        "templating": {"list": [agent_variable()] if per_agent else []},
        "panels": panels,
    }


def agents_query(*names: str, summarize: str | None = None, alias: str = "summary") -> Json:
    columns = [column(name, "string" if name == "name" else "number") for name in names]
    url = f"/api/v1/agents?{TIME_RANGE}"
    return api_query(url, "agents", columns, summarize=summarize, alias=alias)


def count_findings(title: str, description: str, url: str) -> Json:
    query = api_query(url, "findings", [column("id")])
    return stat(title, query, description, calc="count", fields="/^id$/", thresholds=BAD_WHEN_ANY)


def findings_table(url: str, description: str) -> Json:
    links = {**TRACE_LINKS, "agent_name": [TO_AGENT]}
    return table("Findings", description, url, "findings", FINDING_COLUMNS, links=links)


# -- dashboards ----------------------------------------------------------------------------


def fleet_stats() -> list[Json]:
    success = agents_query(
        "runs", "failed_runs", summarize="1 - sum(failed_runs) / sum(runs)", alias="success_rate"
    )
    tool_rate = api_query(
        f"/api/v1/tools?{TIME_RANGE}",
        "tools",
        [column("calls", "number"), column("failures", "number")],
        summarize="sum(failures) / sum(calls)",
        alias="failure_rate",
    )
    tokens = {"input_tokens": "input", "output_tokens": "output"}
    open_findings = count_findings(
        "Open findings", "Detector findings still open.", "/api/v1/findings?state=open&limit=1000"
    )
    open_findings["links"] = [dashboard_link("Findings dashboard", FINDINGS)]
    return [
        stat(
            "Agents active",
            agents_query("name"),
            "Agents with a span in the time range.",
            calc="count",
            fields="/^name$/",
        ),
        stat("Runs", agents_query("runs"), "Distinct run ids per agent, summed.", calc="sum"),
        stat(
            "Run success rate",
            success,
            "Runs whose agent span did not end in error.",
            unit="percentunit",
            thresholds=BAD_WHEN_LOW_RATE,
        ),
        stat(
            "Tool failure rate",
            tool_rate,
            "Failed tool calls over all tool calls.",
            unit="percentunit",
            thresholds=BAD_WHEN_HIGH_RATE,
        ),
        stat("Tokens", agents_query(*tokens), "Input and output tokens.", calc="sum", names=tokens),
        stat(
            "Cost",
            agents_query("cost_usd"),
            "USD cost of the LLM calls the price table prices.",
            calc="sum",
            unit=USD,
        ),
        stat(
            "Unpriced LLM calls",
            agents_query("unpriced_llm_calls"),
            "LLM calls with tokens that no price matched: while any, the cost is a lower bound.",
            calc="sum",
            thresholds=WARN_WHEN_ANY,
        ),
        open_findings,
    ]


def fleet() -> Json:
    agents = table(
        "Agents",
        "Every agent seen in the time range, most recently active first.",
        f"/api/v1/agents?{TIME_RANGE}",
        "agents",
        [
            ("name", "Agent", "string"),
            ("service_name", "Service", "string"),
            ("owner", "Owner", "string"),
            ("runs", "Runs", "number"),
            ("failed_runs", "Failed runs", "number"),
            ("success_rate", "Success rate", "number"),
            ("input_tokens", "Input tokens", "number"),
            ("output_tokens", "Output tokens", "number"),
            ("cost_usd", "Cost", "number"),
            ("open_findings", "Open findings", "number"),
            ("models", "Models", "string"),
            ("tools", "Tools", "string"),
            ("last_seen", "Last seen", "timestamp"),
        ],
        units={"success_rate": "percentunit", "cost_usd": USD},
        links={"name": [TO_AGENT]},
    )
    cost_per_day = timeseries(
        "cost",
        by="agent",
        interval="1d",
        title="Cost per day by agent",
        description="USD cost of each agent's LLM calls, a bar per day (wider for long ranges).",
    )
    rows = [
        [(panel, 3, 4) for panel in fleet_stats()],
        [(timeseries(m, by="agent"), 8, 8) for m in ("runs", "failed_runs", "run_duration_p95_ms")],
        [
            (timeseries("tool_failure_rate", by="agent"), 8, 8),
            (timeseries("tokens", by="agent"), 8, 8),
            (cost_per_day, 8, 8),
        ],
        [(agents, 24, 10)],
    ]
    return dashboard(FLEET, "agentwatch / Fleet", "Every agent at a glance.", layout(rows))


def card(*fields: str, root: str = "") -> Json:
    """Fields of `$agent`'s scorecard (`root="roi"`: of its ROI block)."""
    columns = [column(name, "number") for name in fields]
    return api_query(f"/api/v1/agents/{AGENT}?{TIME_RANGE}", root, columns)


def agent_stats() -> list[Json]:
    return [
        stat(
            "Runs",
            card("runs", "failed_runs"),
            "Runs and failed runs.",
            names={"failed_runs": "failed"},
        ),
        stat(
            "Success rate",
            card("success_rate"),
            "Runs that did not fail.",
            thresholds=BAD_WHEN_LOW_RATE,
            unit="percentunit",
        ),
        stat(
            "Run duration",
            card("run_duration_p50_ns", "run_duration_p95_ns"),
            "Median and 95th percentile.",
            unit="ns",
            names={"run_duration_p50_ns": "p50", "run_duration_p95_ns": "p95"},
        ),
        stat("Steps per run", card("steps_per_run"), "LLM and tool calls per run."),
        stat(
            "Tool calls",
            card("tool_calls", "tool_failures"),
            "Tool calls and failed ones.",
            names={"tool_calls": "calls", "tool_failures": "failed"},
        ),
        stat(
            "Tool failure rate",
            card("tool_failure_rate"),
            "Failed over all tool calls.",
            thresholds=BAD_WHEN_HIGH_RATE,
            unit="percentunit",
        ),
        stat(
            "Tokens",
            card("input_tokens", "output_tokens"),
            "Input and output tokens.",
            names={"input_tokens": "input", "output_tokens": "output"},
        ),
        count_findings(
            "Open findings",
            "The agent's findings still open.",
            f"/api/v1/findings?state=open&agent={AGENT}&limit=1000",
        ),
    ]


def agent_cost_stats() -> list[Json]:
    """Cost and ROI from the scorecard; ROI figures need the job description's `roi`."""
    return [
        stat(
            "Cost",
            card("cost_usd", "cost_per_run_usd"),
            "USD cost of the agent's priced LLM calls, in all and per run.",
            unit=USD,
            names={"cost_usd": "total", "cost_per_run_usd": "per run"},
        ),
        stat(
            "Cost per successful run",
            card("cost_per_successful_run_usd", root="roi"),
            "Cost over the runs that did not fail.",
            unit=USD,
        ),
        stat(
            "Net value",
            card("value_usd", "net_value_usd", root="roi"),
            "Value of the human time saved, and that minus the cost (job description `roi`; "
            "no data when its inputs are not stated).",
            unit=USD,
            names={"value_usd": "value", "net_value_usd": "net"},
        ),
        stat(
            "Time saved",
            card("time_saved_hours", root="roi"),
            "Successful runs x human minutes per run (job description `roi`).",
            unit="h",
        ),
    ]


def agent_traces() -> Json:
    return table(
        "Traces",
        "The agent's traces, newest first; a trace id opens the ClickHouse trace view.",
        f"/api/v1/traces?agent={AGENT}&{TIME_RANGE}&limit=200",
        "traces",
        [
            ("start_time", "Started", "timestamp"),
            ("trace_id", "Trace", "string"),
            ("root_span_name", "Root span", "string"),
            ("service_name", "Service", "string"),
            ("duration_ns", "Duration", "number"),
            ("span_count", "Spans", "number"),
            ("error_count", "Errors", "number"),
            ("status", "Status", "string"),
            ("cost_usd", "Cost", "number"),
        ],
        units={"duration_ns": "ns", "cost_usd": USD},
        links=TRACE_LINKS,
    )


def agent() -> Json:
    tools_url = f"/api/v1/tools?agent={AGENT}&{TIME_RANGE}"
    tools_table = table(
        "Tools",
        "The agent's tools, busiest first.",
        tools_url,
        "tools",
        TOOL_COLUMNS,
        units=TOOL_UNITS,
    )
    agent_findings = findings_table(
        f"/api/v1/findings?agent={AGENT}&{FROM}&limit=1000",
        "The agent's findings open at some point in the time range.",
    )
    runs = {"runs": "runs", "failed_runs": "failed runs"}
    steps = {"llm_calls": "LLM calls", "tool_calls": "tool calls"}
    tokens = {"input_tokens": "input", "output_tokens": "output"}
    rows = [
        [(panel, 3, 4) for panel in agent_stats()],
        [(panel, 6, 4) for panel in agent_cost_stats()],
        [
            (timeseries(runs, agent=True, title="Runs"), 6, 8),
            (timeseries(steps, agent=True, title="Steps", description="LLM and tool calls."), 6, 8),
            (timeseries(tokens, agent=True, title="Tokens"), 6, 8),
            (timeseries("cost", agent=True), 6, 8),
        ],
        [
            (timeseries("tool_calls", by="tool", agent=True), 8, 8),
            (timeseries("tool_failures", by="tool", agent=True), 8, 8),
            (
                timeseries(
                    "evaluation_score", by="evaluation", agent=True, title="Evaluation scores"
                ),
                8,
                8,
            ),
        ],
        [(tools_table, 12, 8), (agent_findings, 12, 8)],
        [(agent_traces(), 24, 10)],
    ]
    description = (
        "One agent: runs, steps, tools, tokens, cost and ROI, evaluation scores, findings, traces."
    )
    return dashboard(AGENT_UID, "agentwatch / Agent", description, layout(rows), per_agent=True)


def tools() -> Json:
    tools_table = table(
        "Tools",
        "Per tool over the time range, busiest first.",
        f"/api/v1/tools?{TIME_RANGE}",
        "tools",
        TOOL_COLUMNS,
        units=TOOL_UNITS,
    )
    failed_calls = table(
        "Failed tool calls",
        "The newest failed calls; arguments appear only as a hash.",
        f"/api/v1/audit/tool-calls?status=error&{TIME_RANGE}&limit=200",
        "tool_calls",
        [
            ("time", "Time", "timestamp"),
            ("agent_name", "Agent", "string"),
            ("tool_name", "Tool", "string"),
            ("error_type", "Error", "string"),
            ("duration_ns", "Duration", "number"),
            ("arguments_hash", "Arguments hash", "string"),
            ("trace_id", "Trace", "string"),
        ],
        units={"duration_ns": "ns"},
        links=TRACE_LINKS,
    )
    rows = [
        [(timeseries(m, by="tool"), 12, 9) for m in ("tool_failure_rate", "tool_latency_p95_ms")],
        [(timeseries(m, by="tool"), 12, 8) for m in ("tool_calls", "tool_failures")],
        [(tools_table, 24, 9)],
        [(failed_calls, 24, 9)],
    ]
    return dashboard(TOOLS, "agentwatch / Tools", "Tool health across agents.", layout(rows))


def findings() -> Json:
    in_range = f"/api/v1/findings?{FROM}&limit=1000"
    stats = [
        count_findings(
            "Open findings", "Findings still open.", "/api/v1/findings?state=open&limit=1000"
        ),
        count_findings(
            "Open critical findings",
            "Open findings of severity critical.",
            "/api/v1/findings?state=open&severity=critical&limit=1000",
        ),
        count_findings("Findings in range", "Open at some point in the time range.", in_range),
    ]
    rows = [
        [(panel, 8, 4) for panel in stats],
        [(timeseries("findings_opened", by=by), 12, 8) for by in ("kind", "agent")],
        [(findings_table(in_range, "Open at some point in the time range, newest first."), 24, 14)],
    ]
    return dashboard(FINDINGS, "agentwatch / Findings", "What the detectors found.", layout(rows))

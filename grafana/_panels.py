"""Pieces of Grafana dashboard JSON: Infinity queries on the agentwatch API, panels, links.

Every query uses the Infinity datasource's *backend* parser (`"parser": "backend"`), so
Grafana's server runs it: alert rules, recorded queries and shared dashboards can use
the same queries as the panels. A column's `text` is its `selector`: Infinity's framer
has matched declared columns by selector in some versions and by alias in others, and
the two agree only when they are equal; panels rename fields for display instead.
The framer orders a table's fields by name, so tables put them in order themselves.
"""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]

API: Json = {"type": "yesoreyeram-infinity-datasource", "uid": "agentwatch-api"}
CLICKHOUSE: Json = {"type": "grafana-clickhouse-datasource", "uid": "agentwatch-clickhouse"}
CLICKHOUSE_NAME = "agentwatch ClickHouse"  # as provisioning/datasources/agentwatch.yaml names it

# Grafana's time range as the API reads it (RFC 3339), and its bucket width.
TIME_RANGE = "since=${__from:date:iso}&until=${__to:date:iso}"
STEP = "step=${__interval}"
# The smallest ${__interval} a panel asks for: the API refuses steps under 1s, and
# Grafana would otherwise send `500ms` or `10ms` for short time ranges.
MIN_INTERVAL = "1m"
AGENT = "${agent:percentencode}"

# The trace view of the ClickHouse datasource for one trace id: the query its own
# trace-id mode builds for OTel tables (Grafana's trace data-frame columns), bounded by
# the otel_traces_trace_id_ts lookup table; agentwatch_sdk marker spans left out.
TRACE_SQL = """\
WITH '${__value.raw}' AS trace_id,
  (SELECT min(Start) FROM agentwatch.otel_traces_trace_id_ts
    WHERE TraceId = trace_id) AS trace_start,
  (SELECT max(End) + 1 FROM agentwatch.otel_traces_trace_id_ts
    WHERE TraceId = trace_id) AS trace_end
SELECT
  TraceId AS traceID, SpanId AS spanID, ParentSpanId AS parentSpanID,
  ServiceName AS serviceName, SpanName AS operationName,
  multiply(toUnixTimestamp64Nano(Timestamp), 0.000001) AS startTime,
  multiply(Duration, 0.000001) AS duration,
  arrayMap(key -> map('key', key, 'value', SpanAttributes[key]), mapKeys(SpanAttributes)) AS tags,
  arrayMap(key -> map('key', key, 'value', ResourceAttributes[key]),
    mapKeys(ResourceAttributes)) AS serviceTags,
  if(StatusCode IN ('Error', 'STATUS_CODE_ERROR'), 2, 0) AS statusCode,
  arrayMap((name, timestamp, attributes) -> tuple(name, toString(toUnixTimestamp64Milli(timestamp)),
    arrayMap(key -> map('key', key, 'value', attributes[key]), mapKeys(attributes)))
    ::Tuple(name String, timestamp String, fields Array(Map(String, String))),
    Events.Name, Events.Timestamp, Events.Attributes) AS logs,
  arrayMap((traceID, spanID, attributes) -> tuple(traceID, spanID,
    arrayMap(key -> map('key', key, 'value', attributes[key]), mapKeys(attributes)))
    ::Tuple(traceID String, spanID String, tags Array(Map(String, String))),
    Links.TraceId, Links.SpanId, Links.Attributes) AS references,
  SpanKind AS kind, StatusMessage AS statusMessage,
  ScopeName AS instrumentationLibraryName, ScopeVersion AS instrumentationLibraryVersion,
  TraceState AS traceState
FROM agentwatch.otel_traces
WHERE TraceId = trace_id AND Timestamp >= trace_start AND Timestamp <= trace_end
  AND Marker = ''
ORDER BY startTime
LIMIT 1000"""


# -- queries -----------------------------------------------------------------------------


def column(selector: str, kind: str = "string") -> Json:
    """An Infinity column: `kind` is string, number or timestamp."""
    return {"selector": selector, "text": selector, "type": kind}


def api_query(
    url: str,
    root: str,
    columns: list[Json],
    *,
    ref: str = "A",
    fmt: str = "table",
    summarize: str | None = None,
    alias: str = "summary",
) -> Json:
    """An Infinity backend query of `url` (a path under the datasource's URL)."""
    query: Json = {
        "refId": ref,
        "datasource": API,
        "type": "json",
        "source": "url",
        "parser": "backend",
        "format": fmt,
        "url": url,
        "url_options": {"method": "GET", "data": ""},
        "root_selector": root,
        "columns": columns,
        "computed_columns": [],
        "filters": [],
    }
    if summarize is not None:
        # One number over all rows, computed by the backend (alertable).
        query["summarizeExpression"] = summarize
        query["summarizeAlias"] = alias
    return query


def series_query(metric: str, *, by: str = "none", ref: str = "A", agent: bool = False) -> Json:
    """`/api/v1/timeseries/{metric}`: long rows {time, series, value} under `points`.

    With `format: timeseries` the backend turns long rows into one field per series
    (labelled `series`), so each series is one line and alert rules see one series each.
    """
    params = [TIME_RANGE, STEP]
    if by != "none":
        params.append(f"by={by}")
    if agent:
        params.append(f"agent={AGENT}")
    columns = [column("time", "timestamp")]
    if by != "none":
        columns.append(column("series"))
    columns.append(column("value", "number"))
    url = f"/api/v1/timeseries/{metric}?" + "&".join(params)
    return api_query(url, "points", columns, ref=ref, fmt="timeseries")


# -- links ---------------------------------------------------------------------------------


def dashboard_link(title: str, uid: str, variables: str = "") -> Json:
    """A link to another agentwatch dashboard, keeping the time range."""
    query = f"{variables}&" if variables else ""
    return {"title": title, "url": f"/d/{uid}/{uid}?{query}${{__url_time_range}}"}


def trace_link() -> Json:
    """A data link from a trace id to the ClickHouse datasource's trace view (Explore)."""
    return {
        "title": "Open trace (ClickHouse trace view)",
        "url": "",
        "internal": {
            "datasourceUid": CLICKHOUSE["uid"],
            "datasourceName": CLICKHOUSE_NAME,
            "query": {
                "refId": "A",
                "datasource": CLICKHOUSE,
                "editorType": "sql",
                "queryType": "traces",
                "format": 3,  # sqlutil FormatOptionTrace: Grafana's trace view
                "pluginVersion": "",
                "rawSql": TRACE_SQL,
            },
        },
    }


# -- panels --------------------------------------------------------------------------------


def _by_name(name: str, *properties: tuple[str, Any]) -> Json:
    return {
        "matcher": {"id": "byName", "options": name},
        "properties": [{"id": key, "value": value} for key, value in properties],
    }


def _by_ref(ref: str, name: str) -> Json:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [{"id": "displayName", "value": name}],
    }


def _thresholds(*steps: tuple[float | None, str]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


GREEN = _thresholds((None, "green"))
BAD_WHEN_ANY = _thresholds((None, "green"), (1, "red"))
WARN_WHEN_ANY = _thresholds((None, "green"), (1, "orange"))
BAD_WHEN_HIGH_RATE = _thresholds((None, "green"), (0.05, "orange"), (0.2, "red"))
BAD_WHEN_LOW_RATE = _thresholds((None, "red"), (0.9, "orange"), (0.98, "green"))


def stat(
    title: str,
    query: Json,
    description: str,
    *,
    unit: str = "short",
    calc: str = "lastNotNull",
    fields: str = "",
    thresholds: Json = GREEN,
    names: dict[str, str] | None = None,
    links: list[Json] | None = None,
) -> Json:
    """One number (or one per field): `calc` reduces the rows, `fields` picks them."""
    defaults: Json = {"unit": unit, "thresholds": thresholds}
    if calc in ("count", "sum"):
        defaults["noValue"] = "0"  # no rows: none of them (a rate stays "No data")
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": API,
        "targets": [query],
        "links": links or [],
        "fieldConfig": {
            "defaults": defaults,
            "overrides": [_by_name(f, ("displayName", n)) for f, n in (names or {}).items()],
        },
        "options": {
            "reduceOptions": {"calcs": [calc], "fields": fields, "values": False},
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "auto",
        },
    }


# Time series metrics of `/api/v1/timeseries/{metric}`: title, unit, bars, description.
METRICS: dict[str, tuple[str, str, bool, str]] = {
    "runs": ("Runs", "short", True, "Runs, in the bucket they started in."),
    "failed_runs": ("Failed runs", "short", True, "Runs whose agent span ended in error."),
    "run_duration_p95_ms": ("Run duration p95", "ms", False, "First span to last, p95."),
    "llm_calls": ("LLM calls", "short", True, "LLM calls (chat, completion, embeddings)."),
    "tool_calls": ("Tool calls", "short", True, "Tool calls."),
    "tool_failures": ("Tool failures", "short", True, "Failed tool calls."),
    "tool_failure_rate": ("Tool failure rate", "percentunit", False, "Failed over all calls."),
    "tool_latency_p95_ms": ("Tool latency p95", "ms", False, "Tool call duration, p95."),
    "tokens": ("Tokens", "short", True, "Input + output tokens."),
    "input_tokens": ("Input tokens", "short", True, "Input tokens."),
    "output_tokens": ("Output tokens", "short", True, "Output tokens."),
    "cost": (
        "Cost",
        "currencyUSD",
        True,
        "USD cost of the LLM calls, from the price table (unpriced calls count nothing).",
    ),
    "evaluation_score": (
        "Evaluation scores",
        "short",
        False,
        "Mean gen_ai.evaluation.result score (span events and log records).",
    ),
    "findings_opened": ("Findings opened", "short", True, "Findings, when they opened."),
}


def timeseries(
    metrics: str | dict[str, str],
    *,
    by: str = "none",
    agent: bool = False,
    title: str = "",
    description: str = "",
    interval: str = MIN_INTERVAL,
) -> Json:
    """A time series panel of `series_query` targets (`agent`: filtered by `$agent`).

    One metric grouped `by` something: one line per group, named by its `series`
    label. Several ungrouped metrics ({metric: name}): one target and line each.
    `interval` is the smallest bucket (`1d`: one bar per day, or wider for long ranges).
    """
    named = metrics if isinstance(metrics, dict) else {metrics: ""}
    refs = [chr(ord("A") + i) for i in range(len(named))]
    first_title, unit, bars, first_description = METRICS[next(iter(named))]
    queries = [
        series_query(metric, by=by, ref=ref, agent=agent)
        for ref, metric in zip(refs, named, strict=True)
    ]
    defaults: Json = {
        "unit": unit,
        "custom": {
            "drawStyle": "bars" if bars else "line",
            "fillOpacity": 60 if bars else 10,
            "lineWidth": 1,
            "showPoints": "never" if bars else "auto",
            "spanNulls": False,
            # Groups add up (runs of each agent); separate metrics may not (failed runs).
            "stacking": {"mode": "normal" if bars and by != "none" else "none", "group": "A"},
        },
    }
    if by != "none":
        defaults["displayName"] = "${__field.labels.series}"
    overrides = [_by_ref(ref, name) for ref, name in zip(refs, named.values(), strict=True) if name]
    return {
        "type": "timeseries",
        "title": title or (first_title if by == "none" else f"{first_title} by {by}"),
        "description": description or first_description,
        "datasource": API,
        "interval": interval,
        "targets": queries,
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def table(
    title: str,
    description: str,
    url: str,
    root: str,
    columns: list[tuple[str, str, str]],
    *,
    units: dict[str, str] | None = None,
    links: dict[str, list[Json]] | None = None,
    sort_by: str | None = None,
) -> Json:
    """A table of the rows under `root`; `columns`: (selector, header, kind) in order.

    Headers, units and links are field overrides matched on the selector: nothing
    renames a field before them (the organize step only orders).
    """
    units, links = units or {}, links or {}
    overrides = []
    for field, header, _ in columns:
        properties: list[tuple[str, Any]] = [("displayName", header)]
        if field in units:
            properties.append(("unit", units[field]))
        if field in links:
            properties.append(("links", links[field]))
        overrides.append(_by_name(field, *properties))
    options: Json = {"showHeader": True, "cellHeight": "sm"}
    if sort_by is not None:
        sort_header = next(h for field, h, _ in columns if field == sort_by)
        options["sortBy"] = [{"displayName": sort_header, "desc": True}]
    query = api_query(url, root, [column(field, kind) for field, _, kind in columns])
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": API,
        "targets": [query],
        "fieldConfig": {"defaults": {}, "overrides": overrides},
        "options": options,
        "transformations": [
            {
                "id": "organize",
                "options": {
                    "excludeByName": {},
                    "indexByName": {field: i for i, (field, _, _) in enumerate(columns)},
                    "renameByName": {},
                },
            }
        ],
    }


def layout(rows: list[list[tuple[Json, int, int]]]) -> list[Json]:
    """Place rows of (panel, width, height) on Grafana's 24-column grid; number them."""
    panels: list[Json] = []
    y = 0
    for row in rows:
        x = 0
        for panel, width, height in row:
            panels.append(
                {
                    "id": len(panels) + 1,
                    "gridPos": {"x": x, "y": y, "w": width, "h": height},
                    **panel,
                }
            )
            x += width
        y += max(height for _, _, height in row)
    return panels

"""Grafana (grafana/): the provisioning and dashboards as Grafana reads them, and every
query they send answered by a live agentwatch with the fields the panels read.

Offline: the committed dashboard JSON is `build_dashboards.py`'s output; each dashboard
is valid Grafana dashboard JSON as far as that can be checked without Grafana; every
datasource, variable and dashboard it refers to exists. Live: agentwatch in this
process (embedded chDB) behind an API token, fed over OTLP/gRPC by the OpenTelemetry SDK
(the example billing agent, and a research agent that calls a failing tool, is scored,
ends in error, and loops on one tool in a second run that is still going). Each Infinity
query goes out as the Infinity backend sends it (the provisioned URL plus the query's
path, Grafana's variables filled in, the provisioned bearer token) and its answer is
read as Infinity's backend framer reads it (root selector, then each column's selector).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import yaml
from agentwatch_sdk import PendingSpanProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Status, StatusCode, Tracer, set_span_in_context

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from api._time import parse_duration_s
from examples.send_agent_trace import make_exporter, send_agent_run
from grafana import build_dashboards
from ingest import ClickHouseStore
from tests.harness import AgentwatchThread, http, make_settings, wait_for

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "agentwatch.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "agentwatch.yaml"
DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
# What docker-compose.yml sets in Grafana's environment for the provisioning files.
ENVIRONMENT = {
    "AGENTWATCH_API_URL",
    "AGENTWATCH_API_TOKEN",
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_RO_USER",
    "CLICKHOUSE_RO_PASSWORD",
}
INFINITY = "yesoreyeram-infinity-datasource"
TOKEN = "grafana-reader"
AGENT = "research agent"  # a space, so `${agent:percentencode}` has work to do
TOOL_FAILURE_RATE = 3 / 10  # see seed(): billing 2 of 4 calls fail, research 1 of 6
RUN_SUCCESS_RATE = 2 / 3  # billing's run, research's run in error, research's loop
# Queries that this traffic leaves empty: only the OpenAPI schema can vouch for them.
MAY_BE_EMPTY = ("severity=critical",)


# -- reading the files ---------------------------------------------------------------------


def load_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in DASHBOARD_FILES}


def provisioned() -> dict[str, dict[str, Any]]:
    """The provisioned datasources by uid."""
    config = yaml.safe_load(DATASOURCES.read_text())
    return {source["uid"]: source for source in config["datasources"]}


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def links(value: Any) -> Iterator[dict[str, Any]]:
    """Every panel link ("links": [...]) and data link (a field override's "links")."""
    if isinstance(value, dict):
        if value.get("id") == "links" and isinstance(value.get("value"), list):
            yield from value["value"]
        for key, item in value.items():
            if key == "links" and isinstance(item, list):
                yield from item
            yield from links(item)
    elif isinstance(value, list):
        for item in value:
            yield from links(item)


def infinity_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, query) for every Infinity query: panel targets, annotations, variables."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if target["datasource"]["type"] == INFINITY:
                yield f"panel {panel['id']} {panel['title']} {target['refId']}", target
    for annotation in dashboard["annotations"]["list"]:
        yield f"annotation {annotation['name']}", annotation["target"]
    for variable in dashboard["templating"]["list"]:
        yield f"${variable['name']}", variable["query"]["infinityQuery"]


ALL_QUERIES = [
    pytest.param(query, id=f"{stem}: {where}")
    for stem, dashboard in load_dashboards().items()
    for where, query in infinity_queries(dashboard)
]
VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)|\[\[(\w+)")


def variables_used(value: Any) -> set[str]:
    """Names of the dashboard variables a JSON value refers to (not Grafana's `__`)."""
    names = {
        name for text in strings(value) for m in VARIABLE.finditer(text) for name in m.groups()
    }
    return {name for name in names if name and not name.startswith("__")}


# -- offline: files --------------------------------------------------------------------------


def test_committed_dashboards_are_what_the_build_script_writes() -> None:
    built = build_dashboards.render_all()
    assert sorted(built) == [path.name for path in DASHBOARD_FILES]
    for path in DASHBOARD_FILES:
        assert path.read_text() == built[path.name], (
            f"{path.name} is stale: run python -m grafana.build_dashboards"
        )


def test_provisioning_defines_the_api_and_clickhouse_datasources_from_the_environment() -> None:
    config = yaml.safe_load(DATASOURCES.read_text())
    assert config["apiVersion"] == 1
    sources = provisioned()
    assert set(sources) == {"agentwatch-api", "agentwatch-clickhouse"}

    api = sources["agentwatch-api"]
    assert api["type"] == INFINITY
    assert api["url"] == "${AGENTWATCH_API_URL}"
    assert api["jsonData"]["auth_method"] == "bearerToken"
    assert api["jsonData"]["allowedHosts"] == ["${AGENTWATCH_API_URL}"]
    assert api["secureJsonData"] == {"bearerToken": "${AGENTWATCH_API_TOKEN}"}

    clickhouse = sources["agentwatch-clickhouse"]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    settings = clickhouse["jsonData"]
    assert (settings["host"], settings["port"], settings["protocol"]) == (
        "${CLICKHOUSE_HOST}",
        8123,
        "http",
    )
    assert (settings["username"], settings["defaultDatabase"]) == (
        "${CLICKHOUSE_RO_USER}",
        "agentwatch",
    )
    assert clickhouse["secureJsonData"] == {"password": "${CLICKHOUSE_RO_PASSWORD}"}
    for signal, table in (("traces", "otel_traces"), ("logs", "otel_logs")):
        assert settings[signal] == {
            "defaultDatabase": "agentwatch",
            "defaultTable": table,
            "otelEnabled": True,
            "otelVersion": "latest",
        }
    # Only what docker-compose.yml provides: Grafana would put "" for anything else.
    referenced = {m.group(1) for text in strings(config) for m in re.finditer(r"\$\{(\w+)\}", text)}
    assert referenced == ENVIRONMENT


def test_dashboard_provider_loads_the_mounted_directory_into_the_agentwatch_folder() -> None:
    config = yaml.safe_load(PROVIDERS.read_text())
    assert config["apiVersion"] == 1
    [provider] = config["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == "agentwatch"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


# -- offline: dashboards ---------------------------------------------------------------------


@pytest.fixture(params=[path.stem for path in DASHBOARD_FILES])
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    loaded: dict[str, Any] = load_dashboards()[request.param]
    return loaded


def test_dashboard_is_grafana_dashboard_json(dashboard: dict[str, Any]) -> None:
    sources = provisioned()
    assert dashboard["uid"] in {path.stem for path in DASHBOARD_FILES}
    assert dashboard["title"].startswith("agentwatch / ")
    assert dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert panels
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in {"stat", "timeseries", "table"}, panel["title"]
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("x", "y", "w", "h")), panel["title"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]
        covered = {
            (grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered
        assert panel["datasource"]["uid"] in sources, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs, panel["title"]
        assert all(refs), panel["title"]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            source = sources[target["datasource"]["uid"]]
            assert target["datasource"]["type"] == source["type"], panel["title"]
    for annotation in dashboard["annotations"]["list"]:
        assert annotation["datasource"]["uid"] in sources
        assert annotation["target"]["refId"]
        fields = {column["text"] for column in annotation["target"]["columns"]}
        assert {mapping["value"] for mapping in annotation["mappings"].values()} <= fields
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"]["uid"] in sources


def test_every_variable_a_dashboard_refers_to_is_defined_and_used(
    dashboard: dict[str, Any],
) -> None:
    defined = {variable["name"] for variable in dashboard["templating"]["list"]}
    used = variables_used([dashboard["panels"], dashboard["annotations"]])
    assert used <= defined, f"undefined: {used - defined}"
    assert defined <= used, f"never used: {defined - used}"


def test_links_lead_to_provisioned_datasources_and_existing_dashboards(
    dashboard: dict[str, Any],
) -> None:
    sources, dashboards = provisioned(), load_dashboards()
    found = list(links(dashboard["panels"]))
    assert found
    for link in found:
        if "internal" in link:  # Explore with another datasource's query
            internal = link["internal"]
            source = sources[internal["datasourceUid"]]
            assert internal["datasourceName"] == source["name"]
            assert internal["query"]["datasource"] == {"type": source["type"], "uid": source["uid"]}
            assert "${__value.raw}" in internal["query"]["rawSql"]
            continue
        url = urlsplit(link["url"])
        uid = url.path.split("/")[2]
        assert url.path.startswith("/d/"), link["url"]
        assert uid in dashboards, link["url"]
        target_variables = {v["name"] for v in dashboards[uid]["templating"]["list"]}
        wanted = {key.removeprefix("var-") for key in parse_qs(url.query) if key.startswith("var-")}
        assert wanted <= target_variables, link["url"]


def test_every_query_is_an_infinity_backend_query_of_the_api(dashboard: dict[str, Any]) -> None:
    """The backend parser is what lets Grafana alert rules run the same queries."""
    for where, query in infinity_queries(dashboard):
        assert (query["type"], query["source"], query["parser"]) == ("json", "url", "backend")
        assert query["url"].startswith("/api/v1/"), where
        assert query["format"] in {"table", "timeseries", "dataframe"}, where
        assert query["columns"], where
        for column in query["columns"]:
            # Equal, so framers that match on either one build the same field.
            assert column["text"] == column["selector"], where
            assert column["type"] in {"string", "number", "timestamp"}, where
        if "summarizeExpression" in query:
            names = set(re.findall(r"[a-z_]+(?=\))", query["summarizeExpression"]))
            assert names, where
            assert names <= {column["text"] for column in query["columns"]}, where


def test_time_series_queries_follow_grafanas_time_range_and_interval(
    dashboard: dict[str, Any],
) -> None:
    for panel in dashboard["panels"]:
        series = [t for t in panel["targets"] if "/api/v1/timeseries/" in t["url"]]
        if not series:
            continue
        # ${__interval} is at least the panel's interval: never under the API's 1s.
        assert parse_duration_s(panel["interval"]) >= 1, panel["title"]
        for query in series:
            params = parse_qs(urlsplit(query["url"]).query)
            assert params["since"] == ["${__from:date:iso}"], panel["title"]
            assert params["until"] == ["${__to:date:iso}"], panel["title"]
            assert params["step"] == ["${__interval}"], panel["title"]
            assert (query["format"], query["root_selector"]) == ("timeseries", "points")
            grouped = "by" in params
            expected = ["time", "series", "value"] if grouped else ["time", "value"]
            assert [c["selector"] for c in query["columns"]] == expected, panel["title"]


# -- live: agentwatch and its traffic --------------------------------------------------------


@dataclass
class Live:
    agentwatch: AgentwatchThread
    store: ClickHouseStore
    trace_id: str  # the research agent's finished run
    openapi: dict[str, Any]

    @property
    def api(self) -> str:
        return self.agentwatch.endpoints.api

    def get(self, path: str, **params: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {TOKEN}"}
        return http().get(f"{self.api}{path}", params=params, headers=headers, timeout=30)


class ResearchAgent:
    """An agent process: its own provider, pending markers, batched OTLP/gRPC export."""

    def __init__(self, endpoint: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "research-svc"}))
        exporter = make_exporter(False, endpoint, None)
        batch = BatchSpanProcessor(exporter, schedule_delay_millis=100)
        self.provider.add_span_processor(PendingSpanProcessor(batch))
        self.tracer: Tracer = self.provider.get_tracer("research.loop")

    def start_run(self, conversation: str) -> Span:
        return self.tracer.start_span(
            f"invoke_agent {AGENT}",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": AGENT,
                "gen_ai.conversation.id": conversation,
            },
        )

    def tool(self, parent: Span, name: str, query: str, error: str | None = None) -> None:
        attributes = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.arguments": json.dumps({"q": query}),
        }
        with self.tracer.start_as_current_span(
            f"execute_tool {name}", context=set_span_in_context(parent), attributes=attributes
        ) as span:
            if error is not None:
                span.set_attribute("error.type", error)
                span.set_status(Status(StatusCode.ERROR, "upstream failed"))

    def chat(self, parent: Span) -> None:
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-sonnet",
            "gen_ai.usage.input_tokens": 300,
            "gen_ai.usage.output_tokens": 40,
        }
        with self.tracer.start_as_current_span(
            "chat claude-sonnet", context=set_span_in_context(parent), attributes=attributes
        ):
            pass


def seed(agentwatch: AgentwatchThread, research: ResearchAgent) -> tuple[str, Span]:
    """The traffic the dashboards are read against; returns (finished trace, open run).

    billing-agent (examples/send_agent_trace.py) twice in conversation conv-42: one run,
    4 tool calls, 2 failing. The research agent: one run with a chat, a failing tool
    call and a search, scored 0.8, ending in error; and a run looping on one search
    (4 identical calls, a runaway_loop finding) that stays open until the module ends.
    """
    grpc = agentwatch.endpoints.otlp_grpc
    for _ in range(2):
        send_agent_run(make_exporter(False, grpc, None))
    loop = research.start_run("conv-loop")
    for _ in range(4):
        research.tool(loop, "web.search", "same question")
    finished = research.start_run("conv-research")
    trace_id = format(finished.get_span_context().trace_id, "032x")
    research.chat(finished)
    research.tool(finished, "kb.fetch", "doc-1", error="TimeoutError")
    research.tool(finished, "web.search", "another question")
    finished.add_event(
        "gen_ai.evaluation.result",
        {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.8},
    )
    finished.set_attribute("error.type", "GaveUp")
    finished.set_status(Status(StatusCode.ERROR, "gave up"))
    finished.end()
    research.provider.force_flush()
    return trace_id, loop


def seeded(live: Live) -> bool:
    """Everything seed() sent is stored and the detectors have seen the loop."""
    agents = {a["name"]: a for a in live.get("/api/v1/agents", since="1h").json()["agents"]}
    research = agents.get(AGENT)
    if research is None or research["failed_runs"] != 1 or research["runs"] != 2:
        return False
    tools = live.get("/api/v1/tools", since="1h").json()["tools"]
    if sum(tool["calls"] for tool in tools) != 10:  # both billing runs, both research runs
        return False
    scores = live.get("/api/v1/timeseries/evaluation_score", agent=AGENT, since="1h").json()
    open_loops = live.get("/api/v1/findings", state="open", agent=AGENT).json()["findings"]
    return bool(scores["points"] and open_loops)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with pytest.MonkeyPatch.context() as env:  # the autouse cleaner is per test
        for name in list(os.environ):
            if name.startswith(("AGENTWATCH_", "OTEL_")):
                env.delenv(name)
        settings = make_settings(tmp_path_factory.mktemp("grafana"), api_tokens={TOKEN: "default"})
        stores: list[ClickHouseStore] = []

        def keep(store: ClickHouseStore) -> ClickHouseStore:
            stores.append(store)
            return store

        with AgentwatchThread(settings, wrap_store=keep) as agentwatch:
            research = ResearchAgent(agentwatch.endpoints.otlp_grpc)
            trace_id, loop = seed(agentwatch, research)
            openapi = http().get(f"{agentwatch.endpoints.api}/openapi.json", timeout=10).json()
            running = Live(agentwatch, stores[0], trace_id, openapi)
            try:
                wait_for(lambda: seeded(running), timeout_s=60)
                yield running
            finally:
                loop.end()
                research.provider.shutdown()


# -- live: the queries ---------------------------------------------------------------------


def grafana_time(moment: datetime) -> str:
    """As Grafana renders `${__from:date:iso}`: milliseconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fill(url: str) -> str:
    """The URL after Grafana's interpolation (last hour, 1m interval, $agent)."""
    now = datetime.now(UTC)
    values = {
        "${__from:date:iso}": grafana_time(now - timedelta(hours=1)),
        "${__to:date:iso}": grafana_time(now + timedelta(minutes=1)),
        "${__interval}": "1m",
        "${agent:percentencode}": quote(AGENT, safe=""),
    }
    for variable, value in values.items():
        url = url.replace(variable, value)
    assert "$" not in url, f"a variable this test does not fill: {url}"
    return url


def datasource_request(live: Live, query: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """URL and headers as the provisioned Infinity datasource sends `query`."""
    environment = {"AGENTWATCH_API_URL": live.api, "AGENTWATCH_API_TOKEN": TOKEN}

    def expand(text: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: environment[m.group(1)], text)

    source = provisioned()["agentwatch-api"]
    url = expand(source["url"]) + fill(query["url"])
    allowed = [expand(host) for host in source["jsonData"]["allowedHosts"]]
    assert any(url.startswith(host) for host in allowed), f"{url} is not in allowedHosts"
    token = expand(source["secureJsonData"]["bearerToken"])
    return url, {"authorization": f"Bearer {token}"}


def rows_under(body: Any, root: str) -> list[dict[str, Any]]:
    """The rows Infinity frames: the value at the root selector, an array or one object."""
    for key in filter(None, root.split(".")):
        assert isinstance(body, dict), f"root selector {root!r}: not an object"
        assert key in body, f"root selector {root!r} not found"
        body = body[key]
    rows = body if isinstance(body, list) else [body]
    assert all(isinstance(row, dict) for row in rows)
    return rows


def schema_fields(openapi: dict[str, Any], path: str, root: str) -> set[str]:
    """The fields the API's OpenAPI document promises for the rows under `root`."""

    def resolve(schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        return schema

    for template, operations in openapi["paths"].items():
        if re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(template)), path):
            content = operations["get"]["responses"]["200"]["content"]
            schema = resolve(content["application/json"]["schema"])
            break
    else:
        raise AssertionError(f"{path} is not in the API's OpenAPI document")
    for key in filter(None, root.split(".")):
        schema = resolve(schema["properties"][key])
        schema = resolve(schema.get("items", schema))
    return set(schema["properties"])


def fits(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, str) and bool(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return isinstance(value, str | list)  # arrays show as JSON text


def summarize(expression: str, rows: list[dict[str, Any]], columns: list[dict[str, Any]]) -> float:
    """Infinity's summarize (sum, count over fields) on the rows."""
    fields = {c["text"]: [row[c["selector"]] for row in rows] for c in columns}
    functions = {"sum": lambda field: sum(v for v in field if v is not None), "count": len}
    return float(eval(expression, {"__builtins__": {}}, {**functions, **fields}))


@pytest.mark.parametrize("query", ALL_QUERIES)
def test_every_query_answers_with_the_fields_its_panel_reads(
    live: Live, query: dict[str, Any]
) -> None:
    url, headers = datasource_request(live, query)
    response = http().get(url, headers=headers, timeout=30)

    assert response.status_code == 200, response.text
    promised = schema_fields(live.openapi, urlsplit(url).path, query["root_selector"])
    assert {column["selector"] for column in query["columns"]} <= promised
    rows = rows_under(response.json(), query["root_selector"])
    if not any(marker in query["url"] for marker in MAY_BE_EMPTY):
        assert rows, f"no rows for {url}"
    for column in query["columns"]:
        for row in rows:
            assert column["selector"] in row, f"{column['selector']} missing: {row}"
            assert fits(column["type"], row[column["selector"]]), (column, row)
    if query["format"] == "timeseries":  # long to wide needs time ascending
        times = [datetime.fromisoformat(row["time"].replace("Z", "+00:00")) for row in rows]
        assert times == sorted(times)
    if "summarizeExpression" in query:
        value = summarize(query["summarizeExpression"], rows, query["columns"])
        assert math.isfinite(value)


def test_the_fleet_rates_are_the_seeded_ones(live: Live) -> None:
    stats = {panel["title"]: panel for panel in load_dashboards()["agentwatch-fleet"]["panels"]}
    expected = {"Run success rate": RUN_SUCCESS_RATE, "Tool failure rate": TOOL_FAILURE_RATE}
    for title, rate in expected.items():
        [query] = stats[title]["targets"]
        url, headers = datasource_request(live, query)
        rows = rows_under(
            http().get(url, headers=headers, timeout=30).json(), query["root_selector"]
        )
        value = summarize(query["summarizeExpression"], rows, query["columns"])
        assert value == pytest.approx(rate), title


def test_the_agent_variable_lists_the_seeded_agents(live: Live) -> None:
    [variable] = load_dashboards()["agentwatch-agent"]["templating"]["list"]
    query = variable["query"]["infinityQuery"]
    url, headers = datasource_request(live, query)
    rows = rows_under(http().get(url, headers=headers, timeout=30).json(), query["root_selector"])
    assert {row[query["columns"][0]["selector"]] for row in rows} == {AGENT, "billing-agent"}


def test_without_the_provisioned_token_the_api_refuses(live: Live) -> None:
    _, query = next(infinity_queries(load_dashboards()["agentwatch-fleet"]))
    url, _ = datasource_request(live, query)
    assert http().get(url, timeout=30).status_code == 401
    assert http().get(url, headers={"authorization": "Bearer x"}, timeout=30).status_code == 401


@pytest.mark.parametrize(
    "interval",
    ["1m", "2m", "5m", "10m", "15m", "20m", "30m", "1h", "2h", "3h", "6h", "12h", "1d", "7d"],
)
def test_the_api_takes_every_interval_grafana_sends_at_or_above_a_minute(
    live: Live, interval: str
) -> None:
    """Grafana rounds ${__interval} to these (and 30d, 1y for very long ranges)."""
    response = live.get("/api/v1/timeseries/runs", since="7d", step=interval)
    assert response.status_code == 200, response.text
    assert response.json()["step_s"] == parse_duration_s(interval)


def test_trace_ids_open_in_the_clickhouse_trace_view(live: Live) -> None:
    """The data link's SQL, run on agentwatch's own store, gives Grafana's trace frame."""
    internal = [
        link["internal"]
        for dashboard in load_dashboards().values()
        for link in links(dashboard["panels"])
        if "internal" in link
    ]
    assert internal
    [sql] = {link["query"]["rawSql"] for link in internal}
    tables = {row["name"] for row in live.store.query("SHOW TABLES FROM agentwatch")}
    clickhouse = provisioned()["agentwatch-clickhouse"]["jsonData"]
    assert {clickhouse["traces"]["defaultTable"], clickhouse["logs"]["defaultTable"]} <= tables

    rows = live.store.query(sql.replace("${__value.raw}", live.trace_id))

    spans = live.get(f"/api/v1/traces/{live.trace_id}").json()["spans"]
    assert sorted(row["spanID"] for row in rows) == sorted(span["span_id"] for span in spans)
    frame_fields = {"traceID", "spanID", "parentSpanID", "operationName", "serviceName"}
    frame_fields |= {"startTime", "duration", "tags", "serviceTags", "logs", "statusCode"}
    assert all(frame_fields <= set(row) for row in rows)
    by_span = {row["spanID"]: row for row in rows}
    for span in spans:
        row = by_span[span["span_id"]]
        assert row["operationName"] == span["name"]
        assert row["statusCode"] == (2 if span["status_code"] == "Error" else 0)
        assert len(row["logs"]) == len(span["events"])

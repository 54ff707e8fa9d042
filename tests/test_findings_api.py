"""`/api/v1/findings` over the real findings table (chDB in a temp dir)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import ApiContext, create_app
from detectors import FINDING_COLUMNS, Finding, finding_row
from ingest import ClickHouseStore, chdb_dsn

NOW_NS = time.time_ns()
HOUR_NS = 3600 * 10**9


def make_finding(**changes: Any) -> Finding:
    values: dict[str, Any] = {
        "id": "f1",
        "kind": "zombie_run",
        "tenant": "acme",
        "severity": "error",
        "summary": "billing-agent: run conv-1 stuck in execute_tool crm.lookup",
        "opened_at_ns": NOW_NS - HOUR_NS,
        "updated_at_ns": NOW_NS - HOUR_NS,
        "agent_name": "billing-agent",
        "service_name": "billing-svc",
        "tool_name": "crm.lookup",
        "trace_id": "ab" * 16,
        "run_id": "conv-1",
        "evidence": {"idle_s": 312.5, "span_ids": ["cd" * 8]},
    }
    values.update(changes)
    return Finding(**values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    opened = ClickHouseStore(chdb_dsn(tmp_path))
    opened.open()
    yield opened
    opened.close()


def write(store: ClickHouseStore, *findings: Finding) -> None:
    store.insert_rows("findings", FINDING_COLUMNS, [finding_row(f) for f in findings])


def client(store: ClickHouseStore, tokens: dict[str, str] | None = None) -> TestClient:
    return TestClient(create_app(ApiContext(store=store, api_tokens=tokens or {})))


def test_the_newest_version_of_a_finding_is_served(store: ClickHouseStore) -> None:
    opened = make_finding()
    resolved = make_finding(
        resolved_at_ns=NOW_NS, updated_at_ns=NOW_NS, version=2, severity="critical"
    )
    write(store, opened)
    write(store, resolved)

    body = client(store).get("/api/v1/findings").json()

    assert len(body["findings"]) == 1
    served = body["findings"][0]
    assert served["id"] == "f1"
    assert served["state"] == "resolved"
    assert served["severity"] == "critical"
    assert served["resolved_at"] is not None
    assert served["resolved_at"].endswith("Z")
    assert served["evidence"] == {"idle_s": 312.5, "span_ids": ["cd" * 8]}
    assert served["trace_id"] == "ab" * 16
    assert client(store).get("/api/v1/findings/f1").json()["state"] == "resolved"


def test_filters_by_kind_state_agent_and_since(store: ClickHouseStore) -> None:
    write(
        store,
        make_finding(id="z-open"),
        make_finding(
            id="z-old",
            opened_at_ns=NOW_NS - 30 * HOUR_NS,
            resolved_at_ns=NOW_NS - 29 * HOUR_NS,
        ),
        make_finding(id="loop", kind="runaway_loop", agent_name="research-agent"),
    )
    api = client(store)

    def ids(**params: Any) -> list[str]:
        response = api.get("/api/v1/findings", params=params)
        assert response.status_code == 200, response.text
        return sorted(f["id"] for f in response.json()["findings"])

    assert ids() == ["loop", "z-old", "z-open"]
    assert ids(kind="zombie_run") == ["z-old", "z-open"]
    assert ids(kind=["zombie_run", "runaway_loop"], state="open") == ["loop", "z-open"]
    assert ids(state="resolved") == ["z-old"]
    assert ids(agent="research-agent") == ["loop"]
    assert ids(since="24h") == ["loop", "z-open"]
    assert ids(until="28h") == ["z-old"]  # opened 30 h ago; the others just now
    assert ids(since="31h", until="29h") == ["z-old"]
    assert ids(tool="crm.lookup", limit=1) in (["loop"], ["z-open"])


def test_each_tenant_sees_only_its_own_findings(store: ClickHouseStore) -> None:
    write(store, make_finding(id="a1"), make_finding(id="g1", tenant="globex"))
    api = client(store, {"read-a": "acme", "read-g": "globex"})

    def ids(token: str) -> list[str]:
        response = api.get("/api/v1/findings", headers={"authorization": f"Bearer {token}"})
        return [f["id"] for f in response.json()["findings"]]

    assert ids("read-a") == ["a1"]
    assert ids("read-g") == ["g1"]
    other = api.get("/api/v1/findings/g1", headers={"authorization": "Bearer read-a"})
    assert other.status_code == 404
    assert api.get("/api/v1/findings").status_code == 401


def test_unknown_finding_is_404_and_bad_since_is_400(store: ClickHouseStore) -> None:
    api = client(store)
    assert api.get("/api/v1/findings/nope").status_code == 404
    response = api.get("/api/v1/findings", params={"since": "yesterday-ish"})
    assert response.status_code == 400
    assert "since" in response.json()["detail"]

"""Bearer tokens: each ingest token's spans belong to its tenant; API tokens see their own."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from examples.send_agent_trace import make_exporter, send_agent_run
from tests.harness import AgentwatchThread, http, make_settings, wait_for


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentwatchThread]:
    """One agentwatch for the module: only the first test sends, to tenants of its own."""
    with pytest.MonkeyPatch.context() as env:  # the autouse cleaner is per test
        for name in list(os.environ):
            if name.startswith(("AGENTWATCH_", "OTEL_")):
                env.delenv(name)
        settings = make_settings(
            tmp_path_factory.mktemp("tenants"),
            ingest_tokens={"ingest-a": "acme", "ingest-b": "globex"},
            api_tokens={"read-a": "acme", "read-b": "globex"},
        )
        with AgentwatchThread(settings) as running:
            yield running


def _get(running: AgentwatchThread, path: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return http().get(f"{running.endpoints.api}{path}", headers=headers, timeout=10)


def test_each_tenant_reads_only_its_own_traces(secured: AgentwatchThread) -> None:
    acme_trace = send_agent_run(make_exporter(False, secured.grpc_target, "ingest-a"))
    globex_trace = send_agent_run(
        make_exporter(True, secured.endpoints.otlp_http, "ingest-b"), agent="other"
    )

    wait_for(lambda: _get(secured, f"/api/v1/traces/{acme_trace}", "read-a").status_code == 200)
    wait_for(lambda: _get(secured, f"/api/v1/traces/{globex_trace}", "read-b").status_code == 200)

    assert _get(secured, f"/api/v1/traces/{acme_trace}", "read-b").status_code == 404
    assert _get(secured, f"/api/v1/traces/{globex_trace}", "read-a").status_code == 404
    listed = _get(secured, "/api/v1/traces", "read-a").json()["traces"]
    assert [trace["trace_id"] for trace in listed] == [acme_trace]


@pytest.mark.parametrize("token", [None, "nope"])
def test_api_without_a_valid_token_is_401(secured: AgentwatchThread, token: str | None) -> None:
    response = _get(secured, "/api/v1/traces", token)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_health_endpoints_need_no_token(secured: AgentwatchThread) -> None:
    assert _get(secured, "/healthz", None).status_code == 200
    assert _get(secured, "/readyz", None).status_code == 200

"""Property-based run over the OpenAPI schema (schemathesis): no request makes a 5xx.

Every operation of `/openapi.json` gets generated path and query parameters — valid,
edge-case and type-confused ones — against a live agentwatch holding a little real
traffic, with a valid API token (so requests reach the queries, not just the 401).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from examples.send_agent_trace import make_exporter, send_agent_run
from tests.harness import AgentwatchThread, http, make_settings, wait_for

TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentwatchThread]:
    settings_ = make_settings(
        tmp_path_factory.mktemp("fuzz"),
        ingest_tokens={"ingest": "acme"},
        api_tokens={TOKEN: "acme"},
    )
    with AgentwatchThread(settings_) as running:
        trace_id = send_agent_run(make_exporter(False, running.grpc_target, "ingest"))
        url = f"{running.endpoints.api}/api/v1/traces/{trace_id}"
        headers = {"authorization": f"Bearer {TOKEN}"}
        wait_for(lambda: http().get(url, headers=headers, timeout=10).status_code == 200)
        yield running


def test_no_request_makes_a_server_error(live: AgentwatchThread) -> None:
    """Each operation in turn (hypothesis drives each one; a failure names the case)."""
    schema = schemathesis.openapi.from_url(f"{live.endpoints.api}/openapi.json")
    # An operation the schema cannot describe is an Err (no .ok()): the test fails on it.
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 10  # every endpoint is in the schema

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def no_server_error(case: Any) -> None:
            response = case.call(headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} {case.query}: {response.text[:300]}"
            )

        no_server_error()

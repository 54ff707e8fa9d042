"""Prices from the config's `pricing:` section, end to end: real SDK spans through a real
agentwatch are stored with the cost of the price in effect at their start.

The config adds a model the shipped table does not know, with a dated price change
(input $1 → $0.50 per 1M tokens from 2026-01-01), and replaces the shipped o3 history
with a single price. Spans before and after the change, with cache reads and reasoning
tokens (GenAI and OpenInference attributes), one with its own reported cost, and one
of an unknown model are sent with the OTel SDK's gRPC exporter; the stored CostUsd and
CostPriceId are checked against a hand computation, and the /agents rollup against
their sum.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.harness import AgentwatchThread, make_settings, wait_for

PRICING = """
pricing:
  - provider: acme-ai
    model: "acme-large*"
    effective_from: 2025-01-01
    input: 1.0
    cached_input: 0.1
    output: 4.0
  - provider: acme-ai
    model: "acme-large*"
    effective_from: 2026-01-01
    input: 0.5
    cached_input: 0.05
    output: 2.0
    reasoning: 3.0
  - provider: openai
    model: [o3, "o3-????-??-??"]
    input: 7.0
    output: 7.0
"""


def _ns(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, 12, tzinfo=UTC).timestamp()) * 10**9


def _chat(model: str, provider: str, usage: dict[str, int], **extra: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.agent.name": "pricing-agent",
    }
    attributes.update({f"gen_ai.usage.{key}": value for key, value in usage.items()})
    attributes.update(extra)
    return attributes


USAGE = {
    "input_tokens": 10_000,
    "output_tokens": 2_000,
    "cache_read.input_tokens": 4_000,
    "reasoning.output_tokens": 500,
}
SPANS = {
    # name: (start, attributes, expected USD, expected price id)
    "before-change": (
        _ns(2025, 12, 31),
        _chat("acme-large-2", "acme-ai", USAGE),
        (6_000 * 1.0 + 4_000 * 0.1 + 1_500 * 4.0 + 500 * 4.0) / 1e6,
        "acme-ai:acme-large*@2025-01-01",
    ),
    "after-change": (
        _ns(2026, 1, 1),
        _chat("acme-large-2", "acme-ai", USAGE),
        (6_000 * 0.5 + 4_000 * 0.05 + 1_500 * 2.0 + 500 * 3.0) / 1e6,
        "acme-ai:acme-large*@2026-01-01",
    ),
    "o3-replaced": (
        _ns(2026, 3, 1),
        _chat("o3", "openai", {"input_tokens": 1_000, "output_tokens": 1_000}),
        2_000 * 7.0 / 1e6,
        "openai:o3@1970-01-01",
    ),
    "reported": (
        _ns(2026, 3, 1),
        _chat("acme-large-2", "acme-ai", USAGE, **{"llm.cost.total": 0.25}),
        0.25,
        "span",
    ),
    "openinference": (
        _ns(2026, 3, 1),
        {
            "openinference.span.kind": "LLM",
            "llm.provider": "acme-ai",
            "llm.model_name": "acme-large-3",
            "llm.token_count.prompt": 3_000,
            "llm.token_count.completion": 400,
            "llm.token_count.prompt_details.cache_read": 1_000,
            "llm.token_count.completion_details.reasoning": 100,
            "agent.name": "pricing-agent",
        },
        (2_000 * 0.5 + 1_000 * 0.05 + 300 * 2.0 + 100 * 3.0) / 1e6,
        "acme-ai:acme-large*@2026-01-01",
    ),
    "unknown-model": (
        _ns(2026, 3, 1),
        _chat("mystery-1", "acme-ai", USAGE),
        None,
        "",
    ),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data_dir: Path = tmp_path_factory.mktemp("pricing")
    config = data_dir / "agentwatch.yaml"
    config.write_text(PRICING)
    settings = make_settings(data_dir / "data", config=config, retention_days=3650)
    with AgentwatchThread(settings) as app:
        provider = TracerProvider(resource=Resource.create({"service.name": "pricing-svc"}))
        exporter = OTLPSpanExporter(endpoint=app.grpc_target, insecure=True)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test.pricing")
        for name, (start, attributes, _, _) in SPANS.items():
            span = tracer.start_span(name, attributes=attributes, start_time=start)
            span.end(end_time=start + 10**9)
        provider.shutdown()
        yield app


def _stored(app: AgentwatchThread) -> dict[str, dict[str, Any]]:
    store = app.app.store
    assert store is not None
    rows = store.query(
        f"SELECT SpanName, CostUsd, CostPriceId FROM {store.table('otel_traces')} "
        "WHERE ServiceName = 'pricing-svc'"
    )
    return {row["SpanName"]: row for row in rows}


def test_each_span_is_stored_with_the_configured_price_in_effect_at_its_start(
    served: AgentwatchThread,
) -> None:
    rows = wait_for(lambda: _stored(served) if len(_stored(served)) == len(SPANS) else None)

    for name, (_, _, usd, price_id) in SPANS.items():
        assert rows[name]["CostPriceId"] == price_id, name
        if usd is None:
            assert rows[name]["CostUsd"] is None
        else:
            assert rows[name]["CostUsd"] == pytest.approx(usd, rel=1e-12), name


def test_agent_rollup_is_the_sum_of_its_priced_spans_and_counts_the_unpriced(
    served: AgentwatchThread,
) -> None:
    wait_for(lambda: len(_stored(served)) == len(SPANS))

    answer = served.api("/api/v1/agents", since="2025-01-01T00:00:00Z").json()
    agent = next(a for a in answer["agents"] if a["name"] == "pricing-agent")

    priced = sum(usd for _, _, usd, _ in SPANS.values() if usd is not None)
    assert agent["cost_usd"] == pytest.approx(priced, abs=1e-6)
    assert agent["unpriced_llm_calls"] == 1

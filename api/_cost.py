"""LLM cost in queries: the stored `CostUsd` column, and the aggregates over it.

Ingest prices each LLM span as it is stored (ingest/sql/insert_spans.sql with the
price table of ingest/_prices.py and the config's `pricing:`): the span's own reported
cost (OpenInference `llm.cost.*`) wins, else the dated price in effect at its start.
A span no price matches stays unpriced (NULL) and is counted as such, never guessed.
"""

from __future__ import annotations

from api._query import LLM_CALL


def with_span_cost() -> str:
    """`WITH … AS span_cost`, to start a query over otel_traces that uses COST_COLUMNS."""
    return "WITH CostUsd AS span_cost "


# Aggregates over the rows: total cost, and LLM calls with tokens that nothing priced.
COST_COLUMNS = (
    "round(sum(ifNull(span_cost, 0)), 6) AS cost_usd, "
    f"countIf({LLM_CALL} AND InputTokens + OutputTokens > 0 AND isNull(span_cost)) "
    "AS unpriced_llm_calls"
)

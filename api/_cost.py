"""LLM cost at query time: the shipped price table, as a ClickHouse expression.

Each LLM span is priced by its model, provider and time (dated prices) from its
stored token counts — cached input and reasoning tokens read from its attributes —
unless the span reports its own cost (OpenInference `llm.cost.*`), which wins. A span
no price matches stays unpriced (NULL) and is counted as such, never guessed.
"""

from __future__ import annotations

from functools import cache

from api._query import LLM_CALL
from ingest._prices import (
    CACHED_INPUT_ATTRIBUTES,
    REASONING_ATTRIBUTES,
    PriceTable,
    sql_cost_expression,
)


def _first_count(keys: tuple[str, ...]) -> str:
    values = ", ".join(f"toUInt64OrZero(SpanAttributes['{key}'])" for key in keys)
    return f"greatest({values})" if len(keys) > 1 else values


@cache
def span_cost_sql() -> str:
    """Nullable(Float64): the USD cost of the row's span (LLM spans; NULL unpriced)."""
    expression = sql_cost_expression(
        PriceTable.load(),
        attributes="SpanAttributes",
        cached_input_tokens=_first_count(CACHED_INPUT_ATTRIBUTES),
        reasoning_tokens=_first_count(REASONING_ATTRIBUTES),
    )
    return f"if({LLM_CALL}, {expression}, NULL)"


def with_span_cost() -> str:
    """`WITH … AS span_cost`, to start a query over otel_traces that uses COST_COLUMNS."""
    return f"WITH {span_cost_sql()} AS span_cost "


# Aggregates over the rows: total cost, and LLM calls with tokens that nothing priced.
COST_COLUMNS = (
    "round(sum(ifNull(span_cost, 0)), 6) AS cost_usd, "
    f"countIf({LLM_CALL} AND InputTokens + OutputTokens > 0 AND isNull(span_cost)) "
    "AS unpriced_llm_calls"
)

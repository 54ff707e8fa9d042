"""The INSERT … SELECT that turns flat span rows into `otel_traces` rows in ClickHouse.

`sql/insert_spans.sql` holds the query; this module fills in the expressions that
repeat ("first non-empty of" chains, prices) and the input rows' structure
(`ingest/_flat_rows.py`). The mapping mirrors `ingest/_conventions.py` field for
field; tests check the two agree.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from ingest._conventions import LLM_OPERATIONS, MARKER_KEY
from ingest._flat_rows import FLAT_STRUCTURE
from ingest._prices import (
    CACHED_INPUT_ATTRIBUTES,
    REASONING_ATTRIBUTES,
    PriceTable,
    sql_index_cost,
    sql_index_price_id,
    sql_price_index,
    sql_reported_cost,
)

_SQL_PACKAGE = "ingest.sql"


def _attr(key: str) -> str:
    """A convention attribute, looked up in `conv`: the span's attributes filtered to the
    keys the conventions read (about 35 lookups on a few entries instead of ~20 each)."""
    return f"conv['{key}']"


def _first_nonempty(*expressions: str) -> str:
    branches = ", ".join(f"{e} != '', {e}" for e in expressions)
    return f"multiIf({branches}, '')"


def _transform(expression: str, mapping: dict[str, str]) -> str:
    keys = ", ".join(f"'{k}'" for k in mapping)
    values = ", ".join(f"'{v}'" for v in mapping.values())
    return f"transform({expression}, [{keys}], [{values}], '')"


def _tokens(*keys: str) -> str:
    text = _first_nonempty(*(_attr(k) for k in keys))
    as_float = f"toFloat64OrZero({text})"
    return (
        f"if(match({text}, '^[0-9]{{1,18}}$'), toUInt64({text}), "
        f"if(isFinite({as_float}) AND {as_float} >= 1, "
        f"toUInt64(least({as_float}, 9223372036854775807.0)), 0))"
    )


def _convention_expressions() -> dict[str, str]:
    from ingest._conventions import (
        _LLM_REQUEST_TYPE_OPERATIONS,
        _OPENINFERENCE_OPERATIONS,
        _TRACELOOP_OPERATIONS,
    )

    traceloop_kind = f"lower({_attr('traceloop.span.kind')})"
    oi_model = _first_nonempty(_attr("llm.model_name"), _attr("embedding.model_name"))
    return {
        # A span's own agent and run first, then what ingest resolved from enclosing
        # spans (see _resolve.py), then the service name and the trace id.
        "agent_name": _first_nonempty(
            _attr("gen_ai.agent.name"),
            _attr("agent.name"),
            f"if({traceloop_kind} = 'agent', {_attr('traceloop.entity.name')}, '')",
            "ResolvedAgent",
            "ServiceName",
        ),
        "run_id": _first_nonempty(
            _attr("gen_ai.conversation.id"),
            _attr("session.id"),
            _attr("traceloop.association.properties.session_id"),
            _attr("traceloop.association.properties.conversation_id"),
            _attr("traceloop.association.properties.thread_id"),
            "ResolvedRun",
            "TraceId",
        ),
        "operation": _first_nonempty(
            _attr("gen_ai.operation.name"),
            _transform(f"upper({_attr('openinference.span.kind')})", _OPENINFERENCE_OPERATIONS),
            _transform(traceloop_kind, _TRACELOOP_OPERATIONS),
            _transform(f"lower({_attr('llm.request.type')})", _LLM_REQUEST_TYPE_OPERATIONS),
        ),
        "tool_name": _first_nonempty(
            _attr("gen_ai.tool.name"),
            _attr("tool.name"),
            f"if({traceloop_kind} = 'tool', {_attr('traceloop.entity.name')}, '')",
        ),
        "tool_call_id": _first_nonempty(
            _attr("gen_ai.tool.call.id"), _attr("tool.id"), _attr("tool_call.id")
        ),
        "request_model": _first_nonempty(
            _attr("gen_ai.request.model"), _attr("llm.request.model_name"), oi_model
        ),
        "response_model": _first_nonempty(
            _attr("gen_ai.response.model"), _attr("llm.response.model_name"), oi_model
        ),
        "provider": "lower("
        + _first_nonempty(
            _attr("gen_ai.provider.name"),
            _attr("gen_ai.system"),
            _attr("llm.provider"),
            _attr("llm.system"),
        )
        + ")",
        "input_tokens": _tokens(
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "llm.usage.prompt_tokens",
        ),
        "output_tokens": _tokens(
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "llm.usage.completion_tokens",
        ),
        # Read by the cost columns (through `_cost_expressions`), listed here so that
        # `conv` and the detectors' attributes carry them.
        "cached_input_tokens": _tokens(*CACHED_INPUT_ATTRIBUTES),
        "reasoning_tokens": _tokens(*REASONING_ATTRIBUTES),
        "reported_cost": sql_reported_cost("conv"),
    }


_LLM_CALL = (
    "Operation IN (" + ", ".join(f"'{op}'" for op in sorted(LLM_OPERATIONS)) + ") AND Marker = ''"
)


@cache
def _cost_expressions(prices: PriceTable) -> dict[str, str]:
    """The cost columns for one price table (LLM calls only; see insert_spans.sql)."""
    conventions = _convention_expressions()
    index = sql_price_index(prices, at_ns="toUnixTimestamp64Nano(Timestamp)")
    return {
        "price_index": f"if({_LLM_CALL}, {index}, toUInt16(0))",
        "reported_cost": f"if({_LLM_CALL}, {conventions['reported_cost']}, NULL)",
        "table_cost": sql_index_cost(
            prices,
            "price_index",
            cached_input_tokens="cost_cached_input_tokens",
            reasoning_tokens="cost_reasoning_tokens",
        ),
        "price_id": sql_index_price_id(prices, "price_index"),
    }


@cache
def _template() -> str:
    return resources.files(_SQL_PACKAGE).joinpath("insert_spans.sql").read_text("utf-8")


def corrections_query(database: str) -> str:
    """The UPDATE that applies a segment's corrections (parameters bound by the caller)."""
    template: str = resources.files(_SQL_PACKAGE).joinpath("apply_corrections.sql").read_text()
    return template.replace("{database}", database)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def file_source(path: str) -> str:
    """Flat rows read by the engine itself from a local file (embedded chDB)."""
    return f"file({_quote(path)}, 'RowBinary', {_quote(FLAT_STRUCTURE)})"


def input_source() -> str:
    """Flat rows sent in the INSERT's body (a ClickHouse server)."""
    return f"input({_quote(FLAT_STRUCTURE)})"


def insert_query(database: str, source: str, prices: PriceTable) -> str:
    """The full INSERT … SELECT; `database` must be a validated identifier.

    `prices` prices the LLM spans (the CostUsd column). With `input_source()` the
    rows follow in the request body, so the query names their format at the end, as
    ClickHouse requires for `input()`.
    """
    trailer = "\nFORMAT RowBinary" if source.startswith("input(") else ""
    return _render(database, source, prices) + trailer


def _convention_keys(expressions: dict[str, str]) -> str:
    return ", ".join(f"'{key}'" for key in sorted(_keys_read(expressions)))


def _keys_read(expressions: dict[str, str]) -> set[str]:
    keys = set(re.findall(r"conv\['([^']+)'\]", " ".join(expressions.values())))
    return keys | {"gen_ai.agent.id", "error.type", MARKER_KEY}


def convention_key_names() -> frozenset[str]:
    """The span attributes the normalized columns are derived from."""
    return frozenset(_keys_read(_convention_expressions()))


def _render(database: str, source: str, prices: PriceTable) -> str:
    conventions = _convention_expressions()
    return _template().format(
        database=database,
        source=source,
        convention_keys=_convention_keys(conventions),
        **{**conventions, **_cost_expressions(prices)},
    )


def insert_settings(dedup_token: str) -> dict[str, str | int]:
    """Settings for `insert_query`."""
    return {
        "insert_deduplication_token": dedup_token,
        # A segment may span many days (a backfill, a long outage's replay): one
        # partition per day must never make a segment uninsertable.
        "max_partitions_per_insert_block": 0,
    }

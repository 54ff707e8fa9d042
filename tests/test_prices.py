"""ingest._prices: matching, dated prices, token accounting, overrides, span cost, SQL."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest import ClickHouseStore, chdb_dsn
from ingest._conventions import derive_agent_fields
from ingest._prices import (
    REPORTED_PRICE_ID,
    PriceTable,
    PriceTableError,
    reported_cost,
    sql_index_cost,
    sql_price_index,
    sql_reported_cost,
    unix_ns,
)


def ns(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return unix_ns(datetime(year, month, day, hour, minute, tzinfo=UTC))


JULY_2025 = ns(2025, 7, 1)


def entry(model: Any, **fields: Any) -> dict[str, Any]:
    return {"model": model, "input": 1.0, "output": 2.0, **fields}


def config_table(*entries: dict[str, Any]) -> PriceTable:
    return PriceTable.load(default=False, overrides=list(entries))


@pytest.fixture(scope="module")
def shipped() -> PriceTable:
    return PriceTable.load()


def price_id(table: PriceTable, model: str, provider: str = "", at: int = JULY_2025) -> str:
    found = table.find(model, provider, at)
    return found.id if found else ""


# --- matching ---------------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_snapshot_names_match_the_family_pattern_and_mini_its_own(reverse: bool) -> None:
    entries = [entry("gpt-4o*"), entry("gpt-4o-mini*")]
    table = config_table(*(reversed(entries) if reverse else entries))

    assert price_id(table, "gpt-4o-2024-08-06") == "*:gpt-4o*@1970-01-01"
    assert price_id(table, "gpt-4o") == "*:gpt-4o*@1970-01-01"
    assert price_id(table, "gpt-4o-mini-2024-07-18") == "*:gpt-4o-mini*@1970-01-01"
    assert price_id(table, "gpt-4o-mini") == "*:gpt-4o-mini*@1970-01-01"


def test_exact_name_beats_any_wildcard() -> None:
    table = config_table(entry("gpt-4o-2024-05-13", input=5.0), entry("gpt-4o-2024-05-1?"))

    assert price_id(table, "gpt-4o-2024-05-13") == "*:gpt-4o-2024-05-13@1970-01-01"
    assert price_id(table, "gpt-4o-2024-05-14") == "*:gpt-4o-2024-05-1?@1970-01-01"


def test_exact_name_beats_a_wildcard_matching_nothing_more_even_one_naming_the_provider() -> None:
    table = config_table(entry("gpt-4o*", provider="openai"), entry("gpt-4o"))

    assert price_id(table, "gpt-4o", "openai") == "*:gpt-4o@1970-01-01"
    assert price_id(table, "gpt-4o-2024-08-06", "openai") == "openai:gpt-4o*@1970-01-01"


def test_longest_literal_prefix_beats_more_literal_characters() -> None:
    table = config_table(entry("gpt-4o-*-preview"), entry("gpt-4o-real*"))

    assert price_id(table, "gpt-4o-realtime-preview") == "*:gpt-4o-real*@1970-01-01"
    assert price_id(table, "gpt-4o-audio-preview") == "*:gpt-4o-*-preview@1970-01-01"


def test_question_mark_stands_for_exactly_one_character(shipped: PriceTable) -> None:
    assert price_id(shipped, "gpt-4o-2024-11-20", "openai") == "openai:gpt-4o-????-??-??@2024-08-06"
    assert price_id(shipped, "gpt-4o-mini", "openai") == "openai:gpt-4o-mini@2024-07-18"
    # Other gpt-4o-* products cost differently: unpriced rather than priced as gpt-4o.
    assert price_id(shipped, "gpt-4o-realtime-preview", "openai") == ""
    assert price_id(shipped, "gpt-4o-2024-08-06-ft", "openai") == ""
    # o3-mini and o3-pro are not o3.
    assert price_id(shipped, "o3-2025-04-16", "openai") == "openai:o3-????-??-??@2025-06-10"
    assert price_id(shipped, "o3-mini", "openai") == ""
    assert price_id(shipped, "o3-pro", "openai") == ""


def test_anthropic_snapshots_do_not_cross_versions(shipped: PriceTable) -> None:
    assert price_id(shipped, "claude-opus-4-20250514", "anthropic").startswith(
        "anthropic:claude-opus-4-20??????@"
    )
    january = ns(2026, 1, 5)
    opus_4_5 = shipped.cost("claude-opus-4-5-20251101", "anthropic", january, 10**6, 0)
    opus_4 = shipped.cost("claude-opus-4-20250514", "anthropic", january, 10**6, 0)
    assert opus_4_5 is not None
    assert opus_4 is not None
    assert (opus_4_5.total_usd, opus_4.total_usd) == (5.0, 15.0)


def test_matching_is_case_insensitive() -> None:
    table = config_table(entry("GPT-4o-????-??-??", provider="OpenAI"))

    assert price_id(table, "Gpt-4O-2024-08-06", "OPENAI") == "openai:gpt-4o-????-??-??@1970-01-01"


def test_entry_naming_a_provider_matches_that_provider_or_a_span_without_one() -> None:
    table = config_table(entry("gpt-4o", provider=["openai", "azure.ai.openai"]))

    assert price_id(table, "gpt-4o", "openai") != ""
    assert price_id(table, "gpt-4o", "azure.ai.openai") != ""
    assert price_id(table, "gpt-4o", "") != ""  # provider optional
    assert price_id(table, "gpt-4o", "aws.bedrock") == ""


def test_provider_specific_entry_beats_a_provider_less_one() -> None:
    table = config_table(
        entry("llama-3*", input=0.5), entry("llama-3*", provider="groq", input=0.6)
    )

    assert price_id(table, "llama-3-70b", "groq") == "groq:llama-3*@1970-01-01"
    assert price_id(table, "llama-3-70b", "together") == "*:llama-3*@1970-01-01"


def test_config_entry_beats_an_equally_specific_shipped_one() -> None:
    table = PriceTable.load(overrides=[entry("gpt-4o", input=1.75)])  # no provider: all

    cost = table.cost("gpt-4o", "openai", JULY_2025, 10**6, 0)
    assert cost is not None
    assert (cost.total_usd, cost.price_id) == (1.75, "*:gpt-4o@1970-01-01")


def test_unknown_model_is_unpriced(shipped: PriceTable) -> None:
    assert shipped.cost("llama-3.1-70b-instruct", "openai", JULY_2025, 1000, 100) is None
    assert shipped.cost("", "openai", JULY_2025, 1000, 100) is None
    assert shipped.cost("gemini-2.5-pro", "gcp.vertex_ai", JULY_2025, 1000, 100) is None
    assert PriceTable.load(default=False).cost("gpt-4o", "openai", JULY_2025, 1, 1) is None


# --- dated prices -----------------------------------------------------------------------


def test_o3_price_cut_applies_from_its_date_hand_computed(shipped: PriceTable) -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500}
    details = {"cached_input_tokens": 200, "reasoning_tokens": 300}
    before = shipped.cost("o3", "openai", ns(2025, 6, 10) - 1, **usage, **details)
    after = shipped.cost("o3", "openai", ns(2025, 6, 10), **usage, **details)

    # Launch: $10 input, $2.50 cached, $40 output and reasoning, per 1M tokens.
    assert before is not None
    assert before.total_usd == pytest.approx((800 * 10 + 200 * 2.5 + 200 * 40 + 300 * 40) / 1e6)
    assert before.price_id == "openai:o3@2025-04-16"
    # From 2025-06-10: $2, $0.50, $8.
    assert after is not None
    assert after.total_usd == pytest.approx((800 * 2 + 200 * 0.5 + 200 * 8 + 300 * 8) / 1e6)
    assert after.price_id == "openai:o3@2025-06-10"


def test_gpt_4o_alias_price_follows_its_move_to_the_august_snapshot(shipped: PriceTable) -> None:
    # 10k input of which 4k cached, 1k output.
    old = shipped.cost("gpt-4o", "openai", ns(2024, 10, 1, 23, 59), 10_000, 1_000, 4_000)
    new = shipped.cost("gpt-4o", "openai", ns(2024, 10, 2), 10_000, 1_000, 4_000)

    assert old is not None
    assert new is not None
    # Before: $5 / $15, no cached-input price (cached tokens billed as input).
    assert old.total_usd == pytest.approx((10_000 * 5 + 1_000 * 15) / 1e6)
    assert old.cached_usd == pytest.approx(4_000 * 5 / 1e6)
    # After: $2.50 / $1.25 cached / $10.
    assert new.total_usd == pytest.approx((6_000 * 2.5 + 4_000 * 1.25 + 1_000 * 10) / 1e6)


def test_span_before_a_models_first_price_is_unpriced(shipped: PriceTable) -> None:
    assert shipped.cost("o3", "openai", ns(2025, 4, 15), 1000, 100) is None
    assert shipped.cost("o3", "openai", ns(2025, 4, 16), 1000, 100) is not None


def test_latest_entry_not_after_the_span_wins_whatever_the_listing_order() -> None:
    table = config_table(
        entry("m", effective_from="2025-09-01", input=3.0),
        entry("m", effective_from="2025-01-01", input=1.0),
        entry("m", effective_from="2025-05-01", input=2.0),
    )

    def rate(year: int, month: int, day: int) -> float:
        cost = table.cost("m", "", ns(year, month, day), 10**6, 0)
        return cost.total_usd if cost else -1.0

    assert [rate(2024, 12, 31), rate(2025, 3, 1), rate(2025, 5, 1), rate(2026, 1, 1)] == [
        -1.0,
        1.0,
        2.0,
        3.0,
    ]


def test_specific_pattern_not_yet_in_effect_leaves_the_span_to_the_general_one() -> None:
    table = config_table(
        entry("acme-*", effective_from="2025-01-01", input=1.0),
        entry("acme-large", effective_from="2025-06-01", input=4.0),
    )

    early = table.cost("acme-large", "", ns(2025, 3, 1), 10**6, 0)
    late = table.cost("acme-large", "", ns(2025, 7, 1), 10**6, 0)
    assert early is not None
    assert late is not None
    assert (early.total_usd, late.total_usd) == (1.0, 4.0)


# --- token accounting -------------------------------------------------------------------


def test_cached_and_reasoning_tokens_are_billed_at_their_rates_hand_computed() -> None:
    table = config_table(
        entry("m", input=3.0, cached_input=0.3, output=15.0, reasoning=12.0, provider="p")
    )

    cost = table.cost(
        "m", "p", JULY_2025, 10_000, 2_000, cached_input_tokens=4_000, reasoning_tokens=1_500
    )

    # input 10k includes 4k cached; output 2k includes 1.5k reasoning.
    assert cost is not None
    parts = (cost.input_usd, cost.cached_usd, cost.output_usd, cost.reasoning_usd)
    assert parts == pytest.approx((0.018, 0.0012, 0.0075, 0.018))
    assert cost.total_usd == pytest.approx(0.0447)
    assert cost.price_id == "p:m@1970-01-01"


def test_unstated_cached_and_reasoning_rates_bill_as_input_and_output() -> None:
    table = config_table(entry("m", input=3.0, output=15.0))

    split = table.cost("m", "", JULY_2025, 1000, 100, cached_input_tokens=400, reasoning_tokens=60)
    plain = table.cost("m", "", JULY_2025, 1000, 100)

    assert split is not None
    assert plain is not None
    assert split.total_usd == pytest.approx(plain.total_usd) == pytest.approx(0.0045)
    assert (split.cached_usd, split.reasoning_usd) == pytest.approx((400 * 3 / 1e6, 60 * 15 / 1e6))


def test_subset_counts_larger_than_their_totals_are_capped() -> None:
    table = config_table(entry("m", input=2.0, cached_input=1.0, output=8.0, reasoning=8.0))

    cost = table.cost("m", "", JULY_2025, 1000, 100, cached_input_tokens=5000, reasoning_tokens=900)

    assert cost is not None
    assert (cost.input_usd, cost.cached_usd) == pytest.approx((0.0, 1000 * 1.0 / 1e6))
    assert (cost.output_usd, cost.reasoning_usd) == pytest.approx((0.0, 100 * 8.0 / 1e6))


def test_shipped_table_states_every_rate_and_its_source(shipped: PriceTable) -> None:
    assert len(shipped) >= 30
    for price in shipped.prices:
        assert price.source, price.id
        assert price.reasoning == price.output, price.id  # every vendor bills it as output
        assert price.cached_input <= price.input, price.id
    covered = {p.pattern for p in shipped.prices}
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o4-mini"):
        assert model in covered
    for model in ("claude-sonnet-4-0", "claude-opus-4-0", "claude-3-5-haiku-latest"):
        assert model in covered
    assert {"gemini-2.5-pro", "gemini-2.5-flash"} <= covered


# --- overrides and bad entries ----------------------------------------------------------


def test_config_entry_replaces_the_shipped_history_of_its_pattern(shipped: PriceTable) -> None:
    table = PriceTable.load(overrides=[entry(["o3", "o3-????-??-??"], provider="openai")])

    assert len(table) == len(shipped) - 2  # two dated entries per pattern became one
    for when in (ns(2025, 5, 1), ns(2025, 7, 1)):
        cost = table.cost("o3-2025-04-16", "openai", when, 10**6, 0)
        assert cost is not None
        assert (cost.total_usd, cost.price_id) == (1.0, "openai:o3-????-??-??@1970-01-01")
    assert price_id(table, "gpt-4.1", "openai") == "openai:gpt-4.1@2025-04-14"  # untouched


def test_config_entry_for_a_new_model_extends_the_table(shipped: PriceTable) -> None:
    table = PriceTable.load(overrides=[entry("ft:gpt-4o-mini:acme:*", provider="openai")])

    assert len(table) == len(shipped) + 1
    assert price_id(table, "ft:gpt-4o-mini:acme:support-v2", "openai") != ""
    assert price_id(table, "gpt-4o-mini", "openai") == "openai:gpt-4o-mini@2024-07-18"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            [entry("x", input=-1)],
            "pricing[0] (model 'x'): input: Input should be greater than or equal to 0",
        ),
        ([{"model": "x", "input": 1}], "pricing[0] (model 'x'): output: Field required"),
        ([entry("x", inptu=1)], "pricing[0] (model 'x'): inptu: unknown key"),
        (
            [entry("ok"), entry("gpt-[45]o")],
            "pricing[1] (model 'gpt-[45]o'): model.0: 'gpt-[45]o': only * and ? are supported "
            "in patterns",
        ),
        (
            [entry("my model")],
            "pricing[0] (model 'my model'): model.0: 'my model' is not a model name or "
            "pattern (printable ASCII, no spaces)",
        ),
        (
            [entry([])],
            "pricing[0] (model []): model: Value should have at least 1 item after "
            "validation, not 0",
        ),
        (
            [entry("x", provider="")],
            "pricing[0] (model 'x'): provider.0: a provider must not be empty",
        ),
        (
            [entry("x", effective_from="last tuesday")],
            "pricing[0] (model 'x'): effective_from: Input should be a valid date or datetime, "
            "invalid character in year",
        ),
        (
            [entry("x", output=float("inf"))],
            "pricing[0] (model 'x'): output: Input should be a finite number",
        ),
        (
            [entry("x", effective_from="2025-01-01"), entry("X", effective_from="2025-01-01")],
            "pricing[1] (model 'x'): same provider, model and effective_from as pricing[0]",
        ),
        (["gpt-4o"], "pricing[0]: Input should be a valid dictionary or instance of _Entry"),
        ({"gpt-4o": {"input": 1}}, "pricing must be a list of price entries"),
    ],
)
def test_bad_config_entry_is_refused_in_one_line_naming_it(overrides: Any, message: str) -> None:
    with pytest.raises(PriceTableError) as caught:
        PriceTable.load(overrides=overrides)

    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


# --- cost a span carries, and token attribute variants ----------------------------------


def test_span_reported_total_cost_wins_over_the_table(shipped: PriceTable) -> None:
    attributes = {
        "llm.cost.total": "0.0123",
        "llm.cost.prompt": "0.01",
        "llm.cost.completion": "0.0023",
        "llm.cost.prompt_details.cache_read": "0.002",
    }

    cost = shipped.span_cost(attributes, "gpt-4o", "openai", JULY_2025, 10**6, 10**6)

    assert cost is not None
    assert (cost.total_usd, cost.price_id) == (0.0123, REPORTED_PRICE_ID)
    parts = (cost.input_usd, cost.cached_usd, cost.output_usd, cost.reasoning_usd)
    assert parts == pytest.approx((0.008, 0.002, 0.0023, 0.0))


def test_span_reported_prompt_and_completion_make_a_total_when_both_are_there() -> None:
    both = reported_cost({"llm.cost.prompt": "0.25", "llm.cost.completion": "1e-3"})
    assert both is not None
    assert both.total_usd == pytest.approx(0.251)
    assert reported_cost({"llm.cost.prompt": "0.25"}) is None  # completion unknown


@pytest.mark.parametrize("text", ["", "nan", "inf", "-0.5", "1e999", "0,5", "$0.50", " 0.5"])
def test_unusable_reported_cost_falls_back_to_the_table(shipped: PriceTable, text: str) -> None:
    cost = shipped.span_cost({"llm.cost.total": text}, "gpt-4o", "openai", JULY_2025, 10**6, 0)

    assert cost is not None
    assert (cost.total_usd, cost.price_id) == (2.5, "openai:gpt-4o@2024-10-02")


@pytest.mark.parametrize(
    ("cached_key", "reasoning_key"),
    [
        ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.reasoning.output_tokens"),
        ("gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.reasoning_tokens"),
        (
            "llm.token_count.prompt_details.cache_read",
            "llm.token_count.completion_details.reasoning",
        ),
        ("llm.usage.cache_read_input_tokens", "gen_ai.usage.reasoning.output_tokens"),
    ],
)
def test_span_cost_reads_cache_and_reasoning_counts_under_each_convention(
    cached_key: str, reasoning_key: str
) -> None:
    table = config_table(entry("m", input=4.0, cached_input=1.0, output=10.0, reasoning=20.0))
    attributes = {cached_key: "3000", reasoning_key: "250.0"}

    cost = table.span_cost(attributes, "m", "", JULY_2025, 10_000, 1_000)

    assert cost is not None
    assert cost.total_usd == pytest.approx((7_000 * 4 + 3_000 * 1 + 750 * 10 + 250 * 20) / 1e6)
    assert (cost.cached_usd, cost.reasoning_usd) == pytest.approx((0.003, 0.005))


def test_current_semconv_names_win_over_older_variants() -> None:
    table = config_table(entry("m", input=4.0, cached_input=1.0))
    attributes = {
        "gen_ai.usage.cache_read.input_tokens": "1000",
        "llm.token_count.prompt_details.cache_read": "9000",
    }

    cost = table.span_cost(attributes, "m", "", JULY_2025, 10_000, 0)

    assert cost is not None
    assert cost.cached_usd == pytest.approx(1000 * 1.0 / 1e6)


def test_openinference_openai_span_costed_end_to_end(shipped: PriceTable) -> None:
    # openinference-instrumentation-openai, chat completion with a prompt-cache hit.
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.token_count.prompt": "2048",
        "llm.token_count.completion": "312",
        "llm.token_count.total": "2360",
        "llm.token_count.prompt_details.cache_read": "1792",
        "llm.token_count.completion_details.reasoning": "0",
    }
    fields = derive_agent_fields(attributes)

    cost = shipped.span_cost(
        attributes,
        fields.response_model,
        fields.provider,
        JULY_2025,
        fields.input_tokens,
        fields.output_tokens,
    )

    assert cost is not None
    assert cost.price_id == "openai:gpt-4o-mini-????-??-??@2024-07-18"
    assert cost.total_usd == pytest.approx((256 * 0.15 + 1792 * 0.075 + 312 * 0.60) / 1e6)


# --- ClickHouse expression --------------------------------------------------------------

SQL_TEST_ENTRIES = [
    entry("gpt-4o*", provider="openai", input=2.5, cached_input=1.25, output=10.0),
    entry("gpt-4o-mini*", provider="openai", input=0.15, output=0.6, effective_from="2025-03-01"),
    entry("acme's-model*", input=7.0, output=9.0),  # a quote in a pattern
    entry("100%-model", input=3.0, output=3.0),  # LIKE's % taken literally
    entry("under_score", input=4.0, output=4.0),  # LIKE's _ taken literally
    entry("b\\slash", input=5.0, output=5.0),
    entry("g?-*", provider=["x", "y"], input=0.5, output=0.5, reasoning=0.25),
]
SQL_MODELS = [
    "gpt-4o",
    "GPT-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18",
    "o3",
    "o3-2025-04-16",
    "o3-mini",
    "gpt-4o-2024-05-13",
    "claude-sonnet-4-20250514",
    "claude-opus-4-1-20250805",
    "gemini-2.5-flash",
    "acme's-model-v2",
    "100%-model",
    "100x-model",
    "under_score",
    "underXscore",
    "b\\slash",
    "g5-anything",
    "nope",
    "",
]
SQL_PROVIDERS = ["openai", "anthropic", "gcp.gemini", "", "x", "OpenAI"]
SQL_TIMES = [ns(2024, 6, 1), ns(2025, 3, 1) - 1, ns(2025, 6, 10), ns(2026, 1, 1)]
SQL_TOKENS = [(1000, 500, 200, 100), (300, 40, 900, 80), (0, 0, 0, 0)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ClickHouseStore]:
    opened = ClickHouseStore(chdb_dsn(tmp_path), database="prices_test")
    yield opened
    opened.close()


def _literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _values_query(expression: str, rows: list[tuple[Any, ...]]) -> str:
    structure = (
        "id UInt32, model String, provider String, at_ns Int64, input UInt64, output UInt64, "
        "cached UInt64, reasoning UInt64, total String, prompt String, completion String"
    )
    body = ",\n".join(
        "(" + ", ".join(_literal(v) if isinstance(v, str) else str(v) for v in row) + ")"
        for row in rows
    )
    return (
        f"SELECT id, {expression} AS cost FROM values({_literal(structure)},\n{body}) ORDER BY id"
    )


def sql_cost_expression(
    table: PriceTable,
    *,
    model: str = "if(ResponseModel != '', ResponseModel, RequestModel)",
    provider: str = "Provider",
    at_ns: str = "toUnixTimestamp64Nano(Timestamp)",
    input_tokens: str = "InputTokens",
    output_tokens: str = "OutputTokens",
    cached_input_tokens: str = "0",
    reasoning_tokens: str = "0",
    attributes: str | None = None,
) -> str:
    """The SQL pieces ingest uses, composed into one expression (NULL unpriced), so a
    grid of rows can be priced in SQL and compared with `PriceTable.cost`.

    The arguments as `sql_price_index`'s and `sql_index_cost`'s. With `attributes` (a
    Map(String, String) expression, e.g. `SpanAttributes`), a cost the span reports
    itself wins, as in `span_cost`. (The index is bound once through a one-element
    lambda, so the expression stands alone, without a WITH clause.)
    """
    index = sql_price_index(table, model=model, provider=provider, at_ns=at_ns)
    cost = sql_index_cost(
        table,
        "price_k",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        reasoning_tokens=reasoning_tokens,
    )
    priced = f"arrayMap(price_k -> {cost}, [{index}])[1]"
    if attributes is None:
        return priced
    return f"coalesce({sql_reported_cost(attributes)}, {priced})"


def _expression(table: PriceTable) -> str:
    return sql_cost_expression(
        table,
        model="model",
        provider="provider",
        at_ns="at_ns",
        input_tokens="input",
        output_tokens="output",
        cached_input_tokens="cached",
        reasoning_tokens="reasoning",
        attributes="map('llm.cost.total', total, 'llm.cost.prompt', prompt, "
        "'llm.cost.completion', completion)",
    )


def test_sql_expression_agrees_with_python_on_a_grid(store: ClickHouseStore) -> None:
    table = PriceTable.load(overrides=SQL_TEST_ENTRIES)
    grid = itertools.product(SQL_MODELS, SQL_PROVIDERS, SQL_TIMES, SQL_TOKENS)
    rows = [(n, *case[:3], *case[3], "", "", "") for n, case in enumerate(grid)]

    result = store.query(_values_query(_expression(table), rows))

    assert len(result) == len(rows)
    priced = 0
    for row, got in zip(rows, result, strict=True):
        _, model, provider, at, i, o, c, r = row[:8]
        want = table.cost(model, provider, at, i, o, c, r)
        if want is None:
            assert got["cost"] is None, row
        else:
            assert got["cost"] == pytest.approx(want.total_usd, rel=1e-12, abs=1e-15), row
        priced += want is not None and i > 0
    assert priced > 100  # the grid exercises real prices, not just NULLs


def test_sql_expression_prefers_a_cost_the_span_reports(store: ClickHouseStore) -> None:
    table = PriceTable.load()
    reported = [("0.5", "", ""), ("", "0.25", "1e-3"), ("nan", "0.25", ""), ("1e999", "", "")]
    rows = [
        (n, "o3", "openai", ns(2025, 6, 10), 1000, 100, 200, 50, *texts)
        for n, texts in enumerate(reported)
    ]

    result = store.query(_values_query(_expression(table), rows))

    for row, got in zip(rows, result, strict=True):
        attributes = dict(
            zip(("llm.cost.total", "llm.cost.prompt", "llm.cost.completion"), row[8:], strict=True)
        )
        attributes["gen_ai.usage.cache_read.input_tokens"] = "200"
        attributes["gen_ai.usage.reasoning.output_tokens"] = "50"
        want = table.span_cost(attributes, "o3", "openai", row[3], 1000, 100)
        assert want is not None
        assert got["cost"] == pytest.approx(want.total_usd, rel=1e-12), row
    assert [got["cost"] for got in result][:2] == pytest.approx([0.5, 0.251])


def test_sql_expression_of_an_empty_table_is_null(store: ClickHouseStore) -> None:
    rows = [(0, "gpt-4o", "openai", JULY_2025, 10, 10, 0, 0, "", "", "")]

    expression = sql_cost_expression(PriceTable.load(default=False), model="model")

    result = store.query(_values_query(expression, rows))

    assert result == [{"id": 0, "cost": None}]

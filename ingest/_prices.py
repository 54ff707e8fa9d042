"""Model prices and what an LLM call cost: the shipped table, config overrides, span cost.

    table = PriceTable.load(overrides=config.get("pricing"))  # PriceTableError: one line
    table.cost(model, provider, at_ns, input_tokens, output_tokens,
               cached_input_tokens=0, reasoning_tokens=0)      # -> Cost | None
    table.span_cost(span_attrs, model, provider, at_ns, input_tokens, output_tokens)
    sql_price_index / sql_index_cost / sql_index_price_id  # the same in ClickHouse

`ingest/prices.yaml` is the shipped table (list prices, USD per 1M tokens); entries
from the config's `pricing:` section have the same shape. A config entry whose
provider(s) and model pattern equal a shipped entry's replaces that pattern's whole
shipped history; any other config entry is added.

Matching (never a guess: no entry, no cost):
  - case-insensitive; a pattern is an exact name or uses `*` (any run) and `?` (one
    character); `[` and `]` are refused (character classes are not supported);
  - an entry naming providers matches a span with one of them, or with no provider;
  - among the entries that match and whose `effective_from` (a UTC day) is not after
    the span's start, the most specific wins: an exact name, then the longest literal
    prefix, then the most literal characters, then config over shipped, then an entry
    naming a provider over one that does not; ties go to the latest `effective_from`.
    So `gpt-4o-mini*` beats `gpt-4o*` for `gpt-4o-mini-2024-07-18`, and `gpt-4o*`
    prices `gpt-4o-2024-08-06` — the shipped table writes such snapshots as
    `gpt-4o-????-??-??` so that `gpt-4o-realtime-preview` is not priced as `gpt-4o`.

Token accounting, as the GenAI semantic conventions, OpenInference and OpenAI's usage
object count: input tokens INCLUDE cache reads (`gen_ai.usage.cache_read.input_tokens`
is a subset of `gen_ai.usage.input_tokens`) and output tokens INCLUDE reasoning
(`gen_ai.usage.reasoning.output_tokens` is a subset of `gen_ai.usage.output_tokens`):

    input_usd     = (input_tokens  - cached_input_tokens) * input        / 1e6
    cached_usd    =  cached_input_tokens                  * cached_input / 1e6
    output_usd    = (output_tokens - reasoning_tokens)    * output       / 1e6
    reasoning_usd =  reasoning_tokens                     * reasoning    / 1e6
    total_usd     = input_usd + cached_usd + output_usd + reasoning_usd

A subset larger than its total (an instrumentation counting the other way) is capped
at the total. Cache writes are billed as input (see prices.yaml for what else is not
modelled). A span that reports its own cost (OpenInference `llm.cost.total`, or both
`llm.cost.prompt` and `llm.cost.completion`) keeps it: see `reported_cost`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from ingest._conventions import _tokens

CACHED_INPUT_ATTRIBUTES = (
    "gen_ai.usage.cache_read.input_tokens",  # GenAI semantic conventions
    "gen_ai.usage.cache_read_input_tokens",  # OpenLLMetry (Python), older GenAI drafts
    "llm.token_count.prompt_details.cache_read",  # OpenInference
    "llm.usage.cache_read_input_tokens",  # OpenLLMetry (JS)
)
REASONING_ATTRIBUTES = (
    "gen_ai.usage.reasoning.output_tokens",  # GenAI semantic conventions
    "gen_ai.usage.reasoning_tokens",  # OpenLLMetry
    "llm.token_count.completion_details.reasoning",  # OpenInference
)
# OpenInference cost attributes (USD); a span that carries them keeps its own cost.
COST_TOTAL = "llm.cost.total"
COST_PROMPT = "llm.cost.prompt"
COST_COMPLETION = "llm.cost.completion"
COST_CACHE_READ = "llm.cost.prompt_details.cache_read"
COST_REASONING = "llm.cost.completion_details.reasoning"
REPORTED_PRICE_ID = "span"  # Cost.price_id when the span reported its own cost

_SHIPPED_TABLE = "prices.yaml"
_EPOCH = date(1970, 1, 1)
_NS_PER_DAY = 86_400 * 10**9
_MAX_PATTERN = 200
_PATTERN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
_USD = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_MAX_CACHED_LOOKUPS = 10_000


class PriceTableError(ValueError):
    """A bad price entry (shipped table or config); the message is one line."""


class Cost(NamedTuple):
    """What one LLM call cost, in USD; `price_id` names the price entry (or "span").

    A NamedTuple: the detectors build one per LLM span, at a sixth of the cost of a
    frozen dataclass.
    """

    total_usd: float
    input_usd: float
    output_usd: float
    cached_usd: float
    reasoning_usd: float
    price_id: str


@dataclass(frozen=True, slots=True)
class Price:
    """One dated price for one model pattern; rates in USD per 1M tokens, resolved."""

    pattern: str  # lowercased
    providers: frozenset[str]  # lowercased; empty: any provider
    effective_from: date
    input: float
    cached_input: float  # the input rate when the entry states none
    output: float
    reasoning: float  # the output rate when the entry states none
    from_config: bool = False
    source: str = ""

    id: str = field(init=False, compare=False)  # "provider(s):pattern@effective_from"
    effective_from_ns: int = field(init=False, compare=False)  # Unix ns of its first day

    def __post_init__(self) -> None:
        # Computed once: every priced span reports the id and compares the start.
        providers = ",".join(sorted(self.providers)) or "*"
        identity = f"{providers}:{self.pattern}@{self.effective_from.isoformat()}"
        object.__setattr__(self, "id", identity)
        start_ns = (self.effective_from - _EPOCH).days * _NS_PER_DAY
        object.__setattr__(self, "effective_from_ns", start_ns)

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Cost:
        """Bill tokens counted the GenAI way (subsets included in totals; see module doc)."""
        input_tokens, output_tokens = max(input_tokens, 0), max(output_tokens, 0)
        cached = min(max(cached_input_tokens, 0), input_tokens)
        reasoning = min(max(reasoning_tokens, 0), output_tokens)
        input_usd = (input_tokens - cached) * self.input / 1e6
        cached_usd = cached * self.cached_input / 1e6
        output_usd = (output_tokens - reasoning) * self.output / 1e6
        reasoning_usd = reasoning * self.reasoning / 1e6
        total = input_usd + cached_usd + output_usd + reasoning_usd
        return Cost(total, input_usd, output_usd, cached_usd, reasoning_usd, self.id)


def _as_tuple(value: Any) -> Any:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else value


def _pattern(value: Any) -> Any:
    if not isinstance(value, str):
        return value  # the str validation that follows names the problem
    text = value.strip().lower()
    if not text or len(text) > _MAX_PATTERN or not _PATTERN_CHARS.fullmatch(text):
        raise ValueError(f"{value!r} is not a model name or pattern (printable ASCII, no spaces)")
    if "[" in text or "]" in text:
        raise ValueError(f"{value!r}: only * and ? are supported in patterns")
    return text


def _provider(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if not text:
        raise ValueError("a provider must not be empty")
    return text


_Rate = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Entry(BaseModel):
    """One entry of prices.yaml or of the config's `pricing:` list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Annotated[
        tuple[Annotated[str, BeforeValidator(_provider)], ...], BeforeValidator(_as_tuple)
    ] = ()
    model: Annotated[
        tuple[Annotated[str, BeforeValidator(_pattern)], ...],
        BeforeValidator(_as_tuple),
        Field(min_length=1),
    ]
    effective_from: date = _EPOCH
    input: _Rate
    cached_input: _Rate | None = None
    output: _Rate
    reasoning: _Rate | None = None
    source: str = ""

    def prices(self, from_config: bool) -> list[Price]:
        return [
            Price(
                pattern=pattern,
                providers=frozenset(self.provider),
                effective_from=self.effective_from,
                input=self.input,
                cached_input=self.input if self.cached_input is None else self.cached_input,
                output=self.output,
                reasoning=self.output if self.reasoning is None else self.reasoning,
                from_config=from_config,
                source=self.source,
            )
            for pattern in self.model
        ]


def _validate(item: Any, where: str) -> _Entry:
    try:
        return _Entry.model_validate(item)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        message = message.removeprefix("Value error, ")
        model = item.get("model") if isinstance(item, Mapping) else None
        named = f" (model {model!r})" if isinstance(model, str | list) else ""
        raise PriceTableError(
            f"{where}{named}: {location + ': ' if location else ''}{message}"
        ) from None


def _entries(items: Any, where: str, from_config: bool) -> list[Price]:
    """Validate a list of entries; one dated price per pattern, duplicates refused."""
    if not isinstance(items, list | tuple):
        raise PriceTableError(f"{where} must be a list of price entries")
    prices: list[Price] = []
    seen: dict[tuple[frozenset[str], str, date], int] = {}
    for index, item in enumerate(items):
        for price in _validate(item, f"{where}[{index}]").prices(from_config):
            key = (price.providers, price.pattern, price.effective_from)
            if key in seen:
                raise PriceTableError(
                    f"{where}[{index}] (model {price.pattern!r}): same provider, model and "
                    f"effective_from as {where}[{seen[key]}]"
                )
            seen[key] = index
            prices.append(price)
    return prices


def _shipped_entries() -> list[Price]:
    text = resources.files("ingest").joinpath(_SHIPPED_TABLE).read_text(encoding="utf-8")
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or set(document) != {"prices"}:
        raise PriceTableError(f"ingest/{_SHIPPED_TABLE}: expected one top-level key, prices")
    return _entries(document["prices"], f"ingest/{_SHIPPED_TABLE}: prices", from_config=False)


def _regex(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), re.DOTALL)


def _rank(price: Price) -> tuple[int, ...]:
    """Higher is more specific; see the module docstring for the order."""
    pattern = price.pattern
    wildcard = min((i for i, c in enumerate(pattern) if c in "*?"), default=len(pattern))
    literal = sum(c not in "*?" for c in pattern)
    return (
        int(wildcard == len(pattern)),
        wildcard,
        literal,
        int(price.from_config),
        int(bool(price.providers)),
        price.effective_from_ns,
    )


class PriceTable:
    """Dated prices by provider and model pattern; immutable once built."""

    def __init__(self, prices: Iterable[Price]) -> None:
        # Most specific first, latest first: the first entry in effect is the answer.
        self._prices = tuple(sorted(prices, key=_rank, reverse=True))
        self._regexes = {p.pattern: _regex(p.pattern) for p in self._prices}
        self._lookups: dict[tuple[str, str], tuple[Price, ...]] = {}

    @classmethod
    def load(
        cls, default: bool = True, overrides: Sequence[Mapping[str, Any]] | None = None
    ) -> PriceTable:
        """The shipped table (unless `default` is false), then the config's `pricing:`."""
        prices = _shipped_entries() if default else []
        if overrides is not None:
            extra = _entries(overrides, "pricing", from_config=True)
            replaced = {(p.providers, p.pattern) for p in extra}
            prices = [p for p in prices if (p.providers, p.pattern) not in replaced] + extra
        return cls(prices)

    @property
    def prices(self) -> tuple[Price, ...]:
        """Every entry, in precedence order (the order `sql_price_index` tests them)."""
        return self._prices

    def __len__(self) -> int:
        return len(self._prices)

    def find(self, model: str, provider: str, at_ns: int) -> Price | None:
        """The price in effect for `model` (and `provider`) at `at_ns`, or None."""
        for price in self._candidates(model, provider):
            if price.effective_from_ns <= at_ns:
                return price
        return None

    def cost(
        self,
        model: str,
        provider: str,
        at_ns: int,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Cost | None:
        """What the call cost, or None when no price matches (never a guess).

        `model`: the response model when known (the snapshot that ran), else the request
        model; `at_ns`: the span's start, Unix nanoseconds. Token counts as the module
        docstring says (cached within input, reasoning within output).
        """
        price = self.find(model, provider, at_ns)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cached_input_tokens, reasoning_tokens)

    def span_cost(
        self,
        attributes: Mapping[str, str],
        model: str,
        provider: str,
        at_ns: int,
        input_tokens: int,
        output_tokens: int,
    ) -> Cost | None:
        """The span's own reported cost, else `cost` with the cache/reasoning counts it carries.

        `input_tokens`/`output_tokens` are the normalized counts (the InputTokens and
        OutputTokens columns); cached and reasoning counts are read from `attributes`
        (`CACHED_INPUT_ATTRIBUTES`, `REASONING_ATTRIBUTES`: first non-empty wins).
        """
        reported = reported_cost(attributes)
        if reported is not None:
            return reported
        return self.cost(
            model,
            provider,
            at_ns,
            input_tokens,
            output_tokens,
            cached_input_tokens=_first_count(attributes, CACHED_INPUT_ATTRIBUTES),
            reasoning_tokens=_first_count(attributes, REASONING_ATTRIBUTES),
        )

    def _candidates(self, model: str, provider: str) -> tuple[Price, ...]:
        """The entries that match `model` and `provider` (any case), in precedence order."""
        key = (model, provider)
        found = self._lookups.get(key)
        if found is None:
            model, provider = model.lower(), provider.lower()
            found = tuple(
                p
                for p in self._prices
                if (not provider or not p.providers or provider in p.providers)
                and self._regexes[p.pattern].fullmatch(model)
            )
            if len(self._lookups) >= _MAX_CACHED_LOOKUPS:
                self._lookups.clear()
            self._lookups[key] = found
        return found


def reported_cost(attributes: Mapping[str, str]) -> Cost | None:
    """The cost a span reports itself (OpenInference `llm.cost.*`), or None.

    `llm.cost.total` wins; without it, `llm.cost.prompt` + `llm.cost.completion` when
    both are present. The breakdown holds what the span reported (cache reads and
    reasoning split out of prompt and completion); absent parts are 0. Values must be
    plain non-negative decimals ("0.0123", "1e-3").
    """
    total = _usd(attributes.get(COST_TOTAL))
    prompt = _usd(attributes.get(COST_PROMPT))
    completion = _usd(attributes.get(COST_COMPLETION))
    if total is None:
        if prompt is None or completion is None:
            return None
        total = prompt + completion
    cached = _usd(attributes.get(COST_CACHE_READ)) or 0.0
    reasoning = _usd(attributes.get(COST_REASONING)) or 0.0
    input_usd = max(prompt - cached, 0.0) if prompt is not None else 0.0
    output_usd = max(completion - reasoning, 0.0) if completion is not None else 0.0
    return Cost(total, input_usd, output_usd, cached, reasoning, REPORTED_PRICE_ID)


def _usd(text: str | None) -> float | None:
    if not text or not _USD.fullmatch(text):
        return None
    value = float(text)
    return value if value != float("inf") else None


def _first_count(attributes: Mapping[str, str], keys: tuple[str, ...]) -> int:
    for key in keys:
        value = attributes.get(key)
        if value:
            return _tokens(value)
    return 0


def unix_ns(moment: datetime) -> int:
    """Unix nanoseconds of an aware datetime (naive ones are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


# --- ClickHouse ---------------------------------------------------------------------------


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sql_price_index(
    table: PriceTable,
    *,
    model: str = "if(ResponseModel != '', ResponseModel, RequestModel)",
    provider: str = "Provider",
    at_ns: str = "toUnixTimestamp64Nano(Timestamp)",
) -> str:
    """A ClickHouse expression: the 1-based position in `table.prices` of the price in
    effect for the row (`find`'s answer), 0 when none matches.

    The arguments are SQL expressions over the row (defaults: `otel_traces` columns;
    `at_ns` in Unix nanoseconds). `table.prices` is in precedence order, so the answer
    is the lowest position whose pattern matches and whose provider and date fit.
    Patterns are matched all at once (`multiMatchAllIndices`, one compiled Hyperscan
    database): a branch per price made the insert query ~1 s slower to analyse and the
    insert ~30 µs slower per LLM span; this costs ~0.25 µs.
    """
    if not table.prices:
        return "toUInt16(0)"
    patterns = ", ".join(_sql_string(_anchored_regex(p.pattern)) for p in table.prices)
    providers = ", ".join(
        "[" + ", ".join(_sql_string(name) for name in sorted(p.providers)) + "]::Array(String)"
        for p in table.prices
    )
    starts = ", ".join(str(p.effective_from_ns) for p in table.prices)
    fits = (
        f"(empty([{providers}][k]) OR lower({provider}) = '' "
        f"OR has([{providers}][k], lower({provider}))) "
        f"AND toInt64({at_ns}) >= [{starts}]::Array(Int64)[k]"
    )
    return (
        f"toUInt16(arrayMin(arrayFilter(k -> {fits}, "
        f"multiMatchAllIndices(lower({model}), [{patterns}]))))"
    )


def _anchored_regex(pattern: str) -> str:
    """A shell-style pattern as a whole-string regex (`_regex`'s, for the SQL side).

    `\\z`, not `$`: `$` would also match before a trailing newline.
    """
    return "^" + _regex(pattern).pattern + "\\z"


def _rates(table: PriceTable, rate: str) -> str:
    return "[" + ", ".join(repr(float(getattr(p, rate))) for p in table.prices) + "]"


def sql_index_cost(
    table: PriceTable,
    index: str,
    *,
    input_tokens: str = "InputTokens",
    output_tokens: str = "OutputTokens",
    cached_input_tokens: str = "0",
    reasoning_tokens: str = "0",
) -> str:
    """Nullable(Float64): `Price.cost(...).total_usd` of the price at `index` (NULL at 0).

    The arithmetic is `Price.cost`'s, operation for operation, so the engine and the
    Python reference agree to the last bit.
    """
    if not table.prices:
        return "CAST(NULL, 'Nullable(Float64)')"
    i, o = f"({input_tokens})", f"({output_tokens})"
    c, r = f"least(({cached_input_tokens}), {i})", f"least(({reasoning_tokens}), {o})"
    k = f"({index})"
    formula = (
        f"({i} - {c}) * {_rates(table, 'input')}[{k}] / 1e6"
        f" + {c} * {_rates(table, 'cached_input')}[{k}] / 1e6"
        f" + ({o} - {r}) * {_rates(table, 'output')}[{k}] / 1e6"
        f" + {r} * {_rates(table, 'reasoning')}[{k}] / 1e6"
    )
    return f"if({k} = 0, NULL, toFloat64({formula}))"


def sql_index_price_id(table: PriceTable, index: str) -> str:
    """The `Price.id` at `index` ('' at 0: out of range reads as the empty string)."""
    if not table.prices:
        return "''"
    return "[" + ", ".join(_sql_string(p.id) for p in table.prices) + f"][({index})]"


def sql_reported_cost(attributes: str) -> str:
    """`reported_cost(...).total_usd` in SQL: NULL when the span reports no cost."""
    usd = _USD.pattern.replace("\\", "\\\\")

    def value(key: str) -> str:
        text = f"{attributes}[{_sql_string(key)}]"
        return f"if(match({text}, '^{usd}$'), toFloat64OrNull({text}), NULL)"

    total, prompt, completion = value(COST_TOTAL), value(COST_PROMPT), value(COST_COMPLETION)
    return (
        f"multiIf(isFinite({total}), {total}, "
        f"isFinite({prompt}) AND isFinite({completion}), {prompt} + {completion}, NULL)"
    )

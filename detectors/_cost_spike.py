"""cost_spike: an agent's LLM cost far above its own baseline, per hour or per run.

Per (tenant, agent). Each LLM call (`chat`, `text_completion`, `generate_content`,
`embeddings`) is priced with the dated price table (`ingest._prices.PriceTable`, the
shipped prices and the config's `pricing:`); a span's own reported cost wins, and a
call no price matches is counted as unpriced, never guessed. Two checks share one
finding per agent:

- **Cost rate.** The cost of the last `window` (1 h; event-time buckets of a twelfth
  of it) against the agent's cost in its past periods of the same length (aligned,
  kept only when they had a priced call — so nights and weekends of an agent that
  works office hours are not "normal = $0"). It fires when the window's cost passes
  max(median + `min_z` x 1.4826 MAD, `min_ratio` x median, `min_usd`), with at least
  `min_calls` priced calls in the window and `min_baseline_periods` periods of
  baseline. Why median and MAD: hourly cost is a compound sum (calls x cost per
  call), right-skewed and with the odd busy hour; the median and the MAD ignore up to
  half the periods being outliers (a past incident does not raise the bar) and need
  no distribution to be assumed. The robust z is the significance test; the ratio
  keeps a very steady agent (MAD near 0) from paging on +20%, and `min_usd` keeps
  cheap agents from paging on cents. A traffic surge counts as much as a loop that
  burns tokens — the evidence shows which (calls and cost per call, now and usual).
- **Cost per run.** A finished run (its outermost `invoke_agent` span arrived) whose
  cost passes max(`run_ratio` x the `run_quantile` of the agent's last `run_history`
  runs, `min_run_usd`), once `min_runs` runs are known. Quantile-based: a run's cost is
  heavy-tailed (long conversations), so a multiple of a high quantile, not a z-score,
  says "no normal run costs this"; with >= 20 runs the p95 is a fair estimate. Runs
  without a priced call are left out.

The finding is a warning, an error from `error_ratio` x the baseline (the median
period, or the run quantile). It resolves once neither check has been above its
threshold for `settle`. A price change counts like any other: it is real spend (and
a dated price applies to calls from its day on, so a past baseline is never repriced).

An LLM call known only by its service (its agent span not yet arrived, no pending
marker) waits up to `attribution_wait` for a span of its trace to name the agent.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors._common import LLM_OPERATIONS, NS, BoundedDict, human_duration, iso
from detectors._config import CostSpikeConfig, DetectorConfig
from detectors._findings import (
    Finding,
    FindingSink,
    Severity,
    escalate_finding,
    open_finding,
    resolve_finding,
)
from ingest import AgentSpan
from ingest._prices import PriceTable

KIND = "cost_spike"
BUCKETS_PER_WINDOW = 12
_MAX_MODELS = 16  # per bucket and per run; beyond, "(other)"
_TOP_MODELS = 3
_MAD_SCALE = 1.4826  # MAD -> standard deviation, for normal data

Models = dict[str, list[float]]  # model -> [cost, calls]


@dataclass(slots=True)
class _Call:
    """One LLM call, priced (cost None: no price matched)."""

    end_ns: int
    cost: float | None
    model: str
    trace_id: str
    service_name: str


@dataclass(slots=True)
class _Bucket:
    cost: float = 0.0
    calls: int = 0  # priced
    unpriced: int = 0
    top_cost: float = -1.0  # the costliest call's cost and trace: the sample trace
    top_trace: str = ""
    models: Models = field(default_factory=dict)


@dataclass(slots=True)
class _Series:
    tenant: str
    agent_name: str
    service_name: str
    bucket_ns: int
    buckets: dict[int, _Bucket] = field(default_factory=dict)  # in the window only
    period: int = -1  # the period being folded into the baseline (-1: none)
    period_cost: float = 0.0
    period_calls: int = 0
    closed_through: int = -1  # the last period folded
    baseline: list[tuple[float, int]] = field(default_factory=list)  # (cost, calls)
    runs: list[float] = field(default_factory=list)  # recent finished runs' cost
    # The same costs in order, kept as runs come and go: sorting the history at every
    # run's end was cost_spike's largest single cost under load.
    ordered_runs: list[float] = field(default_factory=list)
    last_high_ns: int = 0
    finding: Finding | None = None


@dataclass(slots=True)
class _Run:
    """A run (a trace) not yet finished: its LLM cost so far."""

    first_ns: int
    cost: float = 0.0
    calls: int = 0
    unpriced: int = 0
    models: Models = field(default_factory=dict)


class CostSpikeDetector:
    kind = KIND

    def __init__(
        self,
        config: DetectorConfig,
        sink: FindingSink,
        prices: PriceTable,
        max_series: int = 20_000,
        max_runs: int = 100_000,
    ) -> None:
        self._config = config
        self._sink = sink
        self._prices = prices
        self._series: BoundedDict[tuple[str, str], _Series] = BoundedDict(max_series)
        self._runs: BoundedDict[tuple[str, str], _Run] = BoundedDict(max_runs)
        self._trace_agents: BoundedDict[tuple[str, str], str] = BoundedDict(max_runs)
        self._waiting: BoundedDict[tuple[str, str], list[_Call]] = BoundedDict(20_000)
        self._now_ns = 0

    # -- input -----------------------------------------------------------------------

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        touched: dict[tuple[str, str], _Series] = {}
        roots: list[AgentSpan] = []
        for span in spans:
            self._now_ns = max(self._now_ns, span.end_ns)
            if span.operation == "invoke_agent" or span.agent_name != span.service_name:
                self._name_trace(span, touched)
            if span.is_marker:
                continue
            if span.operation == "invoke_agent":
                roots.append(span)
            elif span.operation in LLM_OPERATIONS:
                self._llm_call(span, touched)
        for root in roots:  # after the batch's calls: a run's root often comes with them
            self._run_ended(root, touched)
        for series in touched.values():
            self._evaluate(series, self._now_ns)

    def _name_trace(self, span: AgentSpan, touched: dict[tuple[str, str], _Series]) -> None:
        key = (span.tenant, span.trace_id)
        if self._trace_agents.get(key) != span.agent_name:  # most spans: known already
            self._trace_agents[key] = span.agent_name
        if self._waiting:
            for call in self._waiting.pop(key, ()):
                self._add(span.tenant, span.agent_name, call, touched)

    def _llm_call(self, span: AgentSpan, touched: dict[tuple[str, str], _Series]) -> None:
        cost = self._prices.span_cost(
            span.attributes,
            span.model,
            span.provider,
            span.start_ns,
            span.input_tokens,
            span.output_tokens,
        )
        call = _Call(
            span.end_ns, None if cost is None else cost.total_usd, span.model or "(unknown)",
            span.trace_id, span.service_name,
        )  # fmt: skip
        key = (span.tenant, span.trace_id)
        run = self._runs.get(key)
        if run is None:
            run = self._runs[key] = _Run(first_ns=span.start_ns)
        run.first_ns = min(run.first_ns, span.start_ns)
        _count(run, call)
        agent = span.agent_name
        if agent == span.service_name:
            agent = self._trace_agents.get(key, "")
        if agent:
            self._add(span.tenant, agent, call, touched)
        else:
            self._waiting.setdefault(key, []).append(call)

    def _add(
        self, tenant: str, agent: str, call: _Call, touched: dict[tuple[str, str], _Series]
    ) -> None:
        settings = self._settings(agent)
        if not settings.enabled:
            return
        series = self._get(tenant, agent, call.service_name)
        index = call.end_ns // series.bucket_ns
        if index <= (series.closed_through + 1) * BUCKETS_PER_WINDOW - 1:
            return  # later than late: its period is in the baseline already
        bucket = series.buckets.get(index)
        if bucket is None:
            bucket = series.buckets[index] = _Bucket()
        _count(bucket, call)
        if call.cost is not None and call.cost > bucket.top_cost:
            bucket.top_cost, bucket.top_trace = call.cost, call.trace_id
        touched[(tenant, agent)] = series

    def _get(self, tenant: str, agent: str, service: str) -> _Series:
        key = (tenant, agent)
        series = self._series.get(key)
        if series is None:
            bucket_ns = _bucket_ns(self._settings(agent))
            series = self._series[key] = _Series(tenant, agent, service, bucket_ns)
        return series

    def _run_ended(self, root: AgentSpan, touched: dict[tuple[str, str], _Series]) -> None:
        key = (root.tenant, root.trace_id)
        run = self._runs.get(key)
        if run is None or (root.parent_span_id and run.first_ns < root.start_ns):
            return  # no LLM call yet, or a sub-agent inside the run: the run goes on
        del self._runs[key]
        settings = self._settings(root.agent_name)
        if not (settings.enabled and settings.runs) or not run.calls:
            return
        series = self._get(root.tenant, root.agent_name, root.service_name)
        history = series.runs
        if len(history) >= settings.min_runs:
            reference = _quantile(series.ordered_runs, settings.run_quantile)
            threshold = max(settings.run_ratio * reference, settings.min_run_usd)
            if run.cost > threshold:
                series.last_high_ns = max(series.last_high_ns, self._now_ns)
                self._report(
                    series,
                    self._now_ns,
                    _ratio(run.cost, reference),
                    {
                        "check": "run",
                        "cost_usd": round(run.cost, 6),
                        "baseline_usd": round(reference, 6),
                        "threshold_usd": round(threshold, 6),
                        "calls": run.calls,
                        "unpriced_calls": run.unpriced,
                        "top_models": _top_models(run.models),
                        "trace_id": root.trace_id,
                        "run_id": root.run_id,
                        "baseline_runs": len(history),
                        "baseline_quantile": settings.run_quantile,
                        "baseline_median_usd": round(_quantile(series.ordered_runs, 0.5), 6),
                    },
                )
                touched[(series.tenant, series.agent_name)] = series
        _remember_run(series, run.cost, settings.run_history)

    def tick(self, now_ns: int) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        wait_ns = int(self._config.defaults.cost_spike.attribution_wait * NS)
        touched: dict[tuple[str, str], _Series] = {}
        unclaimed = [
            key
            for key, calls in self._waiting.items()
            if self._now_ns - max(c.end_ns for c in calls) >= wait_ns
        ]
        for tenant, trace in unclaimed:  # judged under the service's name
            for call in self._waiting.pop((tenant, trace)):
                self._add(tenant, call.service_name, call, touched)
        for key, series in self._series.items():
            if series.finding is not None:
                touched[key] = series
        for series in touched.values():
            self._evaluate(series, self._now_ns)

    # -- the verdict -----------------------------------------------------------------

    def _evaluate(self, series: _Series, now_ns: int) -> None:
        settings = self._settings(series.agent_name)
        now_index = now_ns // series.bucket_ns
        self._age(series, now_index, settings)
        if len(series.baseline) >= settings.min_baseline_periods:
            window = [b for i, b in series.buckets.items() if i <= now_index]
            cost = sum(b.cost for b in window)
            calls = sum(b.calls for b in window)
            costs = sorted(c for c, _ in series.baseline)
            median = _quantile(costs, 0.5)
            scale = _MAD_SCALE * _quantile(sorted(abs(c - median) for c in costs), 0.5)
            threshold = max(
                median + settings.min_z * scale, settings.min_ratio * median, settings.min_usd
            )
            if cost > threshold:
                series.last_high_ns = now_ns
                if calls >= settings.min_calls:
                    self._report_window(series, now_ns, window, median, scale, threshold)
                    return
        settle_ns = int(settings.settle * NS)
        if series.finding is not None and now_ns - series.last_high_ns >= settle_ns:
            resolve_finding(
                self._sink,
                series.finding,
                now_ns=now_ns,
                reason=f"cost back to normal for {human_duration(settings.settle)}",
            )
            series.finding = None

    def _report_window(
        self,
        series: _Series,
        now_ns: int,
        window: list[_Bucket],
        median: float,
        scale: float,
        threshold: float,
    ) -> None:
        settings = self._settings(series.agent_name)
        cost = sum(b.cost for b in window)
        calls = sum(b.calls for b in window)
        models: Models = {}
        for bucket in window:
            for model, (model_cost, model_calls) in bucket.models.items():
                _add_model(models, model, model_cost, int(model_calls))
        sample = max(window, key=lambda b: b.top_cost)
        usual_calls = _quantile(sorted(n for _, n in series.baseline), 0.5)
        per_call = sorted(c / n for c, n in series.baseline if n)
        numbers = {
            "check": "window",
            "cost_usd": round(cost, 6),
            "baseline_usd": round(median, 6),
            "threshold_usd": round(threshold, 6),
            "calls": calls,
            "unpriced_calls": sum(b.unpriced for b in window),
            "top_models": _top_models(models),
            "trace_id": sample.top_trace,
            "window_s": settings.window,
            "robust_z": round((cost - median) / scale, 2) if scale else None,
            "baseline_periods": len(series.baseline),
            "baseline_mad_usd": round(scale / _MAD_SCALE, 6),
            "baseline_calls": usual_calls,
            "cost_per_call_usd": round(cost / calls, 6) if calls else None,
            "baseline_cost_per_call_usd": round(_quantile(per_call, 0.5), 6) if per_call else None,
        }
        self._report(series, now_ns, _ratio(cost, median), numbers)

    def _report(
        self, series: _Series, now_ns: int, ratio: float | None, numbers: dict[str, Any]
    ) -> None:
        settings = self._settings(series.agent_name)
        high = ratio is None or ratio >= settings.error_ratio
        severity: Severity = "error" if high else "warning"
        times = f"{ratio:.1f}x" if ratio is not None else "far above"
        if numbers["check"] == "window":
            summary = (
                f"{series.agent_name} spent ${numbers['cost_usd']:.2f} on LLM calls in the "
                f"last {human_duration(settings.window)}, {times} its usual "
                f"${numbers['baseline_usd']:.2f} ({numbers['calls']} calls)"
            )
        else:
            summary = (
                f"{series.agent_name}: a run cost ${numbers['cost_usd']:.2f}, {times} the "
                f"p{round(settings.run_quantile * 100)} of its last "
                f"{numbers['baseline_runs']} runs (${numbers['baseline_usd']:.2f})"
            )
        if numbers["top_models"]:
            summary += f"; top model {numbers['top_models'][0]['model']}"
        evidence = {"agent_name": series.agent_name, "ratio": ratio, **numbers}
        evidence["as_of"] = iso(now_ns)
        if series.finding is None:
            series.finding = open_finding(
                self._sink,
                kind=KIND,
                tenant=series.tenant,
                incident=f"{series.agent_name}\x00{now_ns}",
                severity=severity,
                summary=summary,
                now_ns=now_ns,
                evidence=evidence,
                agent_name=series.agent_name,
                service_name=series.service_name,
                trace_id=numbers["trace_id"],
                run_id=numbers.get("run_id", ""),
            )
        else:
            escalate_finding(
                self._sink,
                series.finding,
                now_ns=now_ns,
                severity=severity,
                summary=summary,
                evidence=evidence,
            )

    def _age(self, series: _Series, now_index: int, settings: CostSpikeConfig) -> None:
        """Fold buckets older than the window into their period, and whole periods into
        the baseline (only periods with a priced call)."""
        oldest_kept = now_index - BUCKETS_PER_WINDOW + 1
        for index in sorted(i for i in series.buckets if i < oldest_kept):
            bucket = series.buckets.pop(index)
            period = index // BUCKETS_PER_WINDOW
            if period != series.period:
                self._close_period(series, settings)
                series.period = period
            series.period_cost += bucket.cost
            series.period_calls += bucket.calls
        if series.period >= 0 and (series.period + 1) * BUCKETS_PER_WINDOW <= oldest_kept:
            self._close_period(series, settings)

    @staticmethod
    def _close_period(series: _Series, settings: CostSpikeConfig) -> None:
        if series.period < 0:
            return
        if series.period_calls:
            series.baseline.append((series.period_cost, series.period_calls))
            del series.baseline[: -settings.baseline_periods]
        series.closed_through = max(series.closed_through, series.period)
        series.period, series.period_cost, series.period_calls = -1, 0.0, 0

    def _settings(self, agent_name: str) -> CostSpikeConfig:
        return self._config.for_agent(agent_name).cost_spike

    # -- persistence -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "now_ns": self._now_ns,
            "series": [_series_state(s) for s in self._series.values()],
            "runs": [
                [t, trace, r.first_ns, r.cost, r.calls, r.unpriced, r.models]
                for (t, trace), r in self._runs.items()
            ],
            "waiting": [
                [t, trace, [[c.end_ns, c.cost, c.model, c.service_name] for c in calls]]
                for (t, trace), calls in self._waiting.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._now_ns = state.get("now_ns", 0)
        for data in state.get("series", []):
            series = _restored_series(data, _bucket_ns(self._settings(data["agent_name"])))
            self._series[(series.tenant, series.agent_name)] = series
        for tenant, trace, first_ns, cost, calls, unpriced, models in state.get("runs", []):
            self._runs[(tenant, trace)] = _Run(first_ns, cost, calls, unpriced, models)
        for tenant, trace, calls in state.get("waiting", []):
            self._waiting[(tenant, trace)] = [
                _Call(end_ns, cost, model, trace, service) for end_ns, cost, model, service in calls
            ]


def _series_state(series: _Series) -> dict[str, Any]:
    return {
        "tenant": series.tenant,
        "agent_name": series.agent_name,
        "service_name": series.service_name,
        "bucket_ns": series.bucket_ns,
        "buckets": [
            [i, b.cost, b.calls, b.unpriced, b.top_cost, b.top_trace, b.models]
            for i, b in series.buckets.items()
        ],
        "period": [series.period, series.period_cost, series.period_calls, series.closed_through],
        "baseline": [list(p) for p in series.baseline],
        "runs": series.runs,
        "last_high_ns": series.last_high_ns,
        "finding": series.finding.as_dict() if series.finding else None,
    }


def _restored_series(data: dict[str, Any], bucket_ns: int) -> _Series:
    series = _Series(data["tenant"], data["agent_name"], data["service_name"], bucket_ns)
    # A changed `window` makes the saved buckets and periods meaningless; the
    # baseline's periods and the runs still describe the agent.
    if data["bucket_ns"] == bucket_ns:
        series.buckets = {
            i: _Bucket(cost, calls, unpriced, top_cost, top_trace, models)
            for i, cost, calls, unpriced, top_cost, top_trace, models in data["buckets"]
        }
        series.period, series.period_cost, series.period_calls, series.closed_through = data[
            "period"
        ]
    series.baseline = [(cost, calls) for cost, calls in data["baseline"]]
    series.runs = list(data["runs"])
    series.ordered_runs = sorted(series.runs)
    series.last_high_ns = data["last_high_ns"]
    series.finding = Finding.from_dict(data["finding"]) if data["finding"] else None
    return series


def _count(into: _Bucket | _Run, call: _Call) -> None:
    if call.cost is None:
        into.unpriced += 1
        return
    into.cost += call.cost
    into.calls += 1
    _add_model(into.models, call.model, call.cost, 1)


def _add_model(models: Models, model: str, cost: float, calls: int) -> None:
    if model not in models and len(models) >= _MAX_MODELS:
        model = "(other)"
    entry = models.setdefault(model, [0.0, 0])
    entry[0] += cost
    entry[1] += calls


def _top_models(models: Models) -> list[dict[str, Any]]:
    top = sorted(models.items(), key=lambda item: -item[1][0])[:_TOP_MODELS]
    return [{"model": m, "cost_usd": round(c, 6), "calls": int(n)} for m, (c, n) in top]


def _remember_run(series: _Series, cost: float, keep: int) -> None:
    """Add a finished run's cost to the history, forgetting the oldest past `keep`."""
    series.runs.append(cost)
    bisect.insort(series.ordered_runs, cost)
    for forgotten in series.runs[:-keep]:
        del series.ordered_runs[bisect.bisect_left(series.ordered_runs, forgotten)]
    del series.runs[:-keep]


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly (0 for none)."""
    if not ordered:
        return 0.0
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ratio(cost: float, baseline: float) -> float | None:
    return round(cost / baseline, 2) if baseline > 0 else None


def _bucket_ns(settings: CostSpikeConfig) -> int:
    return max(1, int(settings.window * NS) // BUCKETS_PER_WINDOW)

"""tool_failure_spike: a tool failing far above its own baseline, found fast.

Per (tenant, agent, tool), and per (tenant, tool) across agents. A failure is a tool
call with status ERROR or an `error.type` (timeouts included), or one whose result
says it failed (`failure_attributes`, e.g. `tool.result.success == "false"`).

Counts go into time buckets on event time (span end). The baseline is the tool's own
long-run failure rate — calls older than the longest window, decayed with a
half-life, from a prior — or a fixed `baseline_rate`. Each configured window pair
fires, in the spirit of the Google SRE workbook's multiwindow burn-rate alerts, when
the failure rate over *both* its long and short window is at least
min(burn_rate x baseline, max_threshold_rate), the short window has `min_calls`
calls, and its failures are significant under a one-sided binomial test at the
baseline (p <= max_p_value), so a handful of calls never pages. The finding resolves
when no window's short rate is above its threshold any more.

A per-tool finding across agents is raised only where no agent's own finding for the
tool is open: low-volume agents failing together, one incident, one finding.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors._common import NS, BoundedDict, iso
from detectors._config import BurnRateWindow, DetectorConfig, ToolFailureSpikeConfig
from detectors._findings import (
    SEVERITY_RANK,
    Finding,
    FindingSink,
    Severity,
    escalate_finding,
    open_finding,
    resolve_finding,
)
from ingest import AgentSpan

KIND = "tool_failure_spike"
ALL_AGENTS = ""  # the agent part of a series key across agents
_EXAMPLES = 5


@dataclass(slots=True)
class _Series:
    """Calls and failures of one tool (for one agent, or all), in time buckets."""

    tenant: str
    agent_name: str
    tool_name: str
    service_name: str = ""
    buckets: dict[int, list[int]] = field(default_factory=dict)  # index -> [calls, failures]
    errors: dict[int, Counter[str]] = field(default_factory=dict)  # index -> error types
    baseline_calls: float = 0.0
    baseline_failures: float = 0.0
    baseline_at: int = 0  # bucket index the baseline was last decayed to
    examples: list[str] = field(default_factory=list)  # recent failing trace ids
    finding: Finding | None = None
    sums: _WindowSums | None = None  # kept with the buckets; rebuilt after a restore


class _WindowSums:
    """(calls, failures) over windows `widths` buckets wide ending at bucket `end`.

    Kept as buckets are counted (`add`) and as the end moves on (`advance`: buckets
    entering a window are added, those leaving it subtracted), so an evaluation does
    not rescan every bucket. Equal to `_rescan` at all times.
    """

    __slots__ = ("calls", "end", "failures", "widths")

    def __init__(self, buckets: dict[int, list[int]], widths: tuple[int, ...], end: int) -> None:
        self.widths = widths
        self.end = end
        self.calls, self.failures = _rescan(buckets, widths, end)

    def add(self, index: int, calls: int, failures: int) -> None:
        """`calls` and `failures` were counted into bucket `index`."""
        if index > self.end:
            return  # not in a window yet: added when the end reaches it
        for n, width in enumerate(self.widths):
            if index > self.end - width:
                self.calls[n] += calls
                self.failures[n] += failures

    def advance(self, buckets: dict[int, list[int]], end: int) -> None:
        """Move the windows' end to bucket `end` (before older buckets are dropped)."""
        step = end - self.end
        if step < 0 or step > len(buckets):  # back in time, or a rescan is cheaper
            self.end = end
            self.calls, self.failures = _rescan(buckets, self.widths, end)
            return
        old = self.end
        self.end = end
        for n, width in enumerate(self.widths):
            # Entering: (max(old, end - width), end]; leaving: (old - width, min(old, end - width)].
            for index in range(max(old, end - width) + 1, end + 1):
                bucket = buckets.get(index)
                if bucket is not None:
                    self.calls[n] += bucket[0]
                    self.failures[n] += bucket[1]
            for index in range(old - width + 1, min(old, end - width) + 1):
                bucket = buckets.get(index)
                if bucket is not None:
                    self.calls[n] -= bucket[0]
                    self.failures[n] -= bucket[1]


class ToolFailureSpikeDetector:
    kind = KIND

    def __init__(self, config: DetectorConfig, sink: FindingSink, max_series: int = 50_000):
        self._config = config
        self._sink = sink
        self._series: BoundedDict[tuple[str, str, str], _Series] = BoundedDict(max_series)
        self._bucket_ns = _bucket_ns(config.defaults.tool_failure_spike)
        self._now_ns = 0

    def extra_keys(self) -> tuple[str, ...]:
        """Attributes the feed must read: the configured failure flags."""
        keys = {rule.key for rule in self._config.defaults.tool_failure_spike.failure_attributes}
        for agent in self._config.agents():
            keys |= {rule.key for rule in agent.tool_failure_spike.failure_attributes}
        return tuple(sorted(keys))

    # -- input -----------------------------------------------------------------------

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        touched: dict[tuple[str, str, str], _Series] = {}
        for span in spans:
            if not span.tool_name or span.marker or span.operation == "invoke_agent":
                continue
            settings = self._settings(span.agent_name)
            if not settings.enabled:
                continue
            failed, error_type = _failure(span, settings)
            index = span.end_ns // self._bucket_ns
            for agent in (span.agent_name, ALL_AGENTS):
                series = self._get(span.tenant, agent, span.tool_name, span.service_name)
                self._count(series, index, failed, error_type, span.trace_id)
                touched[(span.tenant, agent, span.tool_name)] = series
            self._now_ns = max(self._now_ns, span.end_ns)
        # Per agent first: an agent's own finding makes the across-agents one redundant.
        for key in sorted(touched, key=lambda k: k[1] == ALL_AGENTS):
            self._evaluate(touched[key], self._now_ns)

    def _get(self, tenant: str, agent: str, tool: str, service: str) -> _Series:
        key = (tenant, agent, tool)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(tenant, agent, tool, service)
        return series

    @staticmethod
    def _count(series: _Series, index: int, failed: bool, error_type: str, trace: str) -> None:
        bucket = series.buckets.get(index)
        if bucket is None:
            bucket = series.buckets[index] = [0, 0]
        bucket[0] += 1
        if series.sums is not None:
            series.sums.add(index, 1, int(failed))
        if failed:
            bucket[1] += 1
            series.errors.setdefault(index, Counter())[error_type or "(none)"] += 1
            if trace not in series.examples:
                series.examples.append(trace)
                del series.examples[:-_EXAMPLES]

    def tick(self, now_ns: int) -> None:
        self._now_ns = max(self._now_ns, now_ns)
        # Only open findings need the clock (to resolve when calls stop); the others
        # are brought up to date when their next call arrives.
        for series in [s for s in self._series.values() if s.finding is not None]:
            self._evaluate(series, self._now_ns)

    # -- the verdict -----------------------------------------------------------------

    def _evaluate(self, series: _Series, now_ns: int) -> None:
        settings = self._settings(series.agent_name)
        now_index = now_ns // self._bucket_ns
        # The running sums move to now before _age drops the buckets they leave behind.
        sums = self._sums(
            series,
            now_index,
            [w.long for w in settings.windows] + [w.short for w in settings.windows],
        )
        self._age(series, now_index)
        baseline = self._baseline(series, settings)
        firing: list[tuple[BurnRateWindow, dict[str, Any]]] = []
        still_high = False
        for n, window in enumerate(settings.windows):
            threshold = min(window.burn_rate * baseline, settings.max_threshold_rate)
            long_calls, long_failures = sums[n]
            short_calls, short_failures = sums[len(settings.windows) + n]
            short_rate = short_failures / short_calls if short_calls else 0.0
            long_rate = long_failures / long_calls if long_calls else 0.0
            if short_calls and short_rate >= threshold:
                still_high = True
            if short_calls < settings.min_calls or long_rate < threshold or short_rate < threshold:
                continue
            p_value = _binomial_p_value(short_failures, short_calls, baseline)
            if p_value > settings.max_p_value:
                continue
            firing.append(
                (
                    window,
                    {
                        "long_window_s": window.long,
                        "short_window_s": window.short,
                        "burn_rate": window.burn_rate,
                        "threshold_rate": round(threshold, 4),
                        "long_rate": round(long_rate, 4),
                        "short_rate": round(short_rate, 4),
                        "long_calls": long_calls,
                        "long_failures": long_failures,
                        "short_calls": short_calls,
                        "short_failures": short_failures,
                        "p_value": p_value,
                    },
                )
            )
        if firing:
            self._report(series, now_ns, baseline, firing, settings)
        elif series.finding is not None and not still_high:
            resolve_finding(
                self._sink,
                series.finding,
                now_ns=now_ns,
                reason="failure rate back under the threshold",
            )
            series.finding = None

    def _report(
        self,
        series: _Series,
        now_ns: int,
        baseline: float,
        firing: list[tuple[BurnRateWindow, dict[str, Any]]],
        settings: ToolFailureSpikeConfig,
    ) -> None:
        if series.agent_name == ALL_AGENTS and self._an_agent_reports(series):
            return
        window, numbers = max(firing, key=lambda item: SEVERITY_RANK[item[0].severity])
        severity: Severity = window.severity
        longest = max(w.long for w in settings.windows)
        errors = self._top_errors(series, now_ns // self._bucket_ns, longest)
        who = series.agent_name or "all agents"
        summary = (
            f"{series.tool_name} ({who}) failing {numbers['short_rate']:.0%} of calls "
            f"(baseline {baseline:.1%}): {numbers['short_failures']}/{numbers['short_calls']} "
            f"in the last {_duration(window.short)}"
            + (f"; top error {errors[0][0]}" if errors else "")
        )
        evidence = {
            "tool_name": series.tool_name,
            "agent_name": series.agent_name or None,
            "baseline_rate": round(baseline, 4),
            "baseline_source": "configured" if settings.baseline_rate else "learnt",
            **numbers,
            "windows_firing": [
                {"long_s": w.long, "short_s": w.short, "burn_rate": w.burn_rate} for w, _ in firing
            ],
            "top_error_types": [{"error_type": e, "count": n} for e, n in errors],
            "example_trace_ids": list(series.examples),
            "as_of": iso(now_ns),
        }
        if series.finding is None:
            if series.agent_name != ALL_AGENTS:
                self._resolve_across_agents(series, now_ns)
            series.finding = open_finding(
                self._sink,
                kind=KIND,
                tenant=series.tenant,
                incident=f"{series.agent_name}\x00{series.tool_name}\x00{now_ns}",
                severity=severity,
                summary=summary,
                now_ns=now_ns,
                evidence=evidence,
                agent_name=series.agent_name,
                service_name=series.service_name,
                tool_name=series.tool_name,
                trace_id=series.examples[-1] if series.examples else "",
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

    def _resolve_across_agents(self, series: _Series, now_ns: int) -> None:
        """An agent's own finding supersedes the tool's finding across agents."""
        across = self._series.get((series.tenant, ALL_AGENTS, series.tool_name))
        if across is not None and across.finding is not None:
            resolve_finding(
                self._sink,
                across.finding,
                now_ns=now_ns,
                reason=f"superseded by the finding for {series.agent_name}",
            )
            across.finding = None

    def _an_agent_reports(self, across: _Series) -> bool:
        return any(
            s.finding is not None
            for (tenant, agent, tool), s in self._series.items()
            if tenant == across.tenant and tool == across.tool_name and agent != ALL_AGENTS
        )

    # -- counting --------------------------------------------------------------------

    def _sums(
        self, series: _Series, now_index: int, windows_s: list[float]
    ) -> list[tuple[int, int]]:
        """(calls, failures) over each window ending now, from the series' running sums."""
        widths = tuple(max(1, math.ceil(w * NS / self._bucket_ns)) for w in windows_s)
        sums = series.sums
        if sums is None or sums.widths != widths:
            sums = series.sums = _WindowSums(series.buckets, widths, now_index)
        else:
            sums.advance(series.buckets, now_index)
        return list(zip(sums.calls, sums.failures, strict=True))

    def _age(self, series: _Series, now_index: int) -> None:
        """Fold buckets older than the longest window into the decayed baseline."""
        settings = self._settings(series.agent_name)
        longest = max(w.long for w in settings.windows)
        oldest_kept = now_index - math.ceil(longest * NS / self._bucket_ns) + 1
        half_life_buckets = settings.baseline_half_life * NS / self._bucket_ns
        for index in sorted(i for i in series.buckets if i < oldest_kept):
            calls, failures = series.buckets.pop(index)
            series.errors.pop(index, None)
            if series.baseline_at:
                decay = 0.5 ** (max(0, index - series.baseline_at) / half_life_buckets)
                series.baseline_calls *= decay
                series.baseline_failures *= decay
            series.baseline_calls += calls
            series.baseline_failures += failures
            series.baseline_at = max(series.baseline_at, index)

    @staticmethod
    def _baseline(series: _Series, settings: ToolFailureSpikeConfig) -> float:
        if settings.baseline_rate is not None:
            return settings.baseline_rate
        learnt = (series.baseline_failures + settings.prior_rate * settings.prior_calls) / (
            series.baseline_calls + settings.prior_calls
        )
        return max(settings.min_baseline_rate, learnt)

    def _top_errors(
        self, series: _Series, now_index: int, window_s: float
    ) -> list[tuple[str, int]]:
        first = now_index - math.ceil(window_s * NS / self._bucket_ns) + 1
        total: Counter[str] = Counter()
        for index, counts in series.errors.items():
            if index >= first:
                total.update(counts)
        return total.most_common(3)

    def _settings(self, agent_name: str) -> ToolFailureSpikeConfig:
        return self._config.for_agent(agent_name).tool_failure_spike

    # -- persistence -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "now_ns": self._now_ns,
            "series": [
                {
                    "tenant": s.tenant,
                    "agent_name": s.agent_name,
                    "tool_name": s.tool_name,
                    "service_name": s.service_name,
                    "buckets": [[i, c, f] for i, (c, f) in s.buckets.items()],
                    "errors": [[i, dict(c)] for i, c in s.errors.items()],
                    "baseline": [s.baseline_calls, s.baseline_failures, s.baseline_at],
                    "examples": s.examples,
                    "finding": s.finding.as_dict() if s.finding else None,
                }
                for s in self._series.values()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        self._now_ns = state.get("now_ns", 0)
        for data in state.get("series", []):
            series = _Series(
                data["tenant"], data["agent_name"], data["tool_name"], data["service_name"]
            )
            series.buckets = {i: [c, f] for i, c, f in data["buckets"]}
            series.errors = {i: Counter(c) for i, c in data["errors"]}
            series.baseline_calls, series.baseline_failures, series.baseline_at = data["baseline"]
            series.examples = list(data["examples"])
            series.finding = Finding.from_dict(data["finding"]) if data["finding"] else None
            self._series[(series.tenant, series.agent_name, series.tool_name)] = series


def _failure(span: AgentSpan, settings: ToolFailureSpikeConfig) -> tuple[bool, str]:
    """(failed, error type) of one tool call."""
    if span.is_error:
        return True, span.error_type
    for rule in settings.failure_attributes:
        value = span.attributes.get(rule.key)
        if value is not None and value.lower() == rule.equals.lower():
            return True, f"{rule.key}={value}"
    return False, ""


def _rescan(
    buckets: dict[int, list[int]], widths: tuple[int, ...], end: int
) -> tuple[list[int], list[int]]:
    """(calls, failures) per window ending at bucket `end`, in one pass over the buckets."""
    firsts = [end - width + 1 for width in widths]
    calls = [0] * len(widths)
    failures = [0] * len(widths)
    for index, (bucket_calls, bucket_failures) in buckets.items():
        if index > end:
            continue
        for n, first in enumerate(firsts):
            if index >= first:
                calls[n] += bucket_calls
                failures[n] += bucket_failures
    return calls, failures


def _binomial_p_value(failures: int, calls: int, rate: float) -> float:
    """P(at least `failures` of `calls` fail) when each fails with probability `rate`."""
    # scipy.stats is ~1 s of imports: paid by the first test, not by every importer.
    from scipy.stats import binom

    return float(binom.sf(failures - 1, calls, rate))


def _bucket_ns(settings: ToolFailureSpikeConfig) -> int:
    """A tenth of the shortest short window: fine enough that windows end on time."""
    shortest = min((w.short for w in settings.windows), default=60.0)
    return max(NS // 10, int(shortest * NS / 10))


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"

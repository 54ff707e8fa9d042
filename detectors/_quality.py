"""quality_drift: an agent's evaluation scores drop, silently, as things change.

Per (tenant, agent, evaluation name), from `gen_ai.evaluation.result` events (a
numeric `gen_ai.evaluation.score.value`, else a known `score.label` mapped through
`labels`). The first `reference_samples` scores are the reference (mean, std).
Every later score feeds a one-sided CUSUM for a downward shift (in reference
standard deviations: S = max(0, S + (mean - x)/std - k)); when S passes h, the
recent `window` scores are compared with the reference by a one-sided Mann-Whitney U
test, and a finding opens when p <= `max_p_value` and the mean dropped by at least
`min_drop`. Its evidence links the agent's recent change points (a model swap, a new
tool, a schema change) as likely causes. It resolves when the recent scores are back
(no longer significantly lower, and within half a std of the reference mean).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors._common import NS, BoundedDict, iso
from detectors._config import DetectorConfig, QualityDriftConfig
from detectors._findings import Finding, FindingSink, open_finding, resolve_finding
from ingest import AgentSpan

KIND = "quality_drift"
_MIN_STD = 1e-3  # scores that never vary still have a scale
_RESOLVE_P = 0.05
_CAUSE_WINDOW_NS = 24 * 3600 * NS

# (tenant, agent, since_ns) -> [{"id", "summary", "at"}]: recent change points.
ChangeLookup = Callable[[str, str, int], list[dict[str, Any]]]


@dataclass(slots=True)
class _Series:
    tenant: str
    agent_name: str
    evaluation: str
    service_name: str
    reference: list[float] = field(default_factory=list)
    reference_stats: tuple[float, float] | None = None  # (mean, std) once it is full
    recent: deque[float] = field(default_factory=deque)
    cusum: float = 0.0
    since_test: int = 1_000_000  # scores since the last significance test
    last_ns: int = 0
    last_trace_id: str = ""
    finding: Finding | None = None


class QualityDriftDetector:
    kind = KIND

    def __init__(
        self,
        config: DetectorConfig,
        sink: FindingSink,
        changes: ChangeLookup | None = None,
        max_series: int = 20_000,
    ) -> None:
        self._config = config
        self._sink = sink
        self._changes = changes
        self._series: BoundedDict[tuple[str, str, str], _Series] = BoundedDict(max_series)

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        scored = [
            (evaluation.time_ns or span.end_ns, span, evaluation)
            for span in spans
            if span.evaluations
            for evaluation in span.evaluations
        ]
        for at_ns, span, evaluation in sorted(scored, key=lambda item: item[0]):
            settings = self._settings(span.agent_name)
            if not settings.enabled:
                continue
            score = evaluation.score
            if score is None:
                score = settings.labels.get(evaluation.label.strip().lower())
            if score is None:
                continue
            series = self._get(span, evaluation.name or "(unnamed)")
            series.last_ns = max(series.last_ns, at_ns)
            series.last_trace_id = span.trace_id
            self._add(series, score, settings)

    def _get(self, span: AgentSpan, evaluation: str) -> _Series:
        key = (span.tenant, span.agent_name, evaluation)
        series = self._series.get(key)
        if series is None:
            series = _Series(span.tenant, span.agent_name, evaluation, span.service_name)
            self._series[key] = series
        return series

    def _add(self, series: _Series, score: float, settings: QualityDriftConfig) -> None:
        if len(series.reference) < settings.reference_samples:
            series.reference.append(score)
            return
        if series.recent.maxlen != settings.window:
            series.recent = deque(series.recent, maxlen=settings.window)
        series.recent.append(score)
        if series.reference_stats is None:
            series.reference_stats = _mean_std(series.reference)
        mean, std = series.reference_stats
        # A step is capped at 3 std: one outlier (a judge's bad answer) must not carry
        # the CUSUM past its alarm level by itself.
        step = min((mean - score) / std, 3.0) - settings.cusum_k
        series.cusum = max(0.0, series.cusum + step)
        series.since_test += 1
        if series.finding is None:
            if (
                series.cusum > settings.cusum_h
                and len(series.recent) >= settings.min_samples
                # After a test that found nothing, wait for a third of a window of new
                # scores: re-testing on every score would try until chance says yes.
                and series.since_test >= max(1, settings.window // 3)
            ):
                series.since_test = 0
                self._maybe_open(series, mean, std, settings)
        elif self._recovered(series, mean, std):
            resolve_finding(
                self._sink,
                series.finding,
                now_ns=series.last_ns,
                reason="scores recovered",
                recent_mean=round(statistics.fmean(series.recent), 4),
            )
            series.finding = None
            series.cusum = 0.0

    def _maybe_open(
        self, series: _Series, mean: float, std: float, settings: QualityDriftConfig
    ) -> None:
        recent_mean = statistics.fmean(series.recent)
        drop = mean - recent_mean
        if drop < settings.min_drop:
            return
        p_value = _lower_p_value(list(series.recent), series.reference)
        if p_value > settings.max_p_value:
            return
        causes = (
            self._changes(series.tenant, series.agent_name, series.last_ns - _CAUSE_WINDOW_NS)
            if self._changes is not None
            else []
        )
        summary = (
            f"{series.agent_name}: {series.evaluation} scores dropped from {mean:.2f} to "
            f"{recent_mean:.2f} over the last {len(series.recent)} evaluations"
            + (f"; likely cause: {causes[-1]['summary']}" if causes else "")
        )
        series.finding = open_finding(
            self._sink,
            kind=KIND,
            tenant=series.tenant,
            incident=f"{series.agent_name}\x00{series.evaluation}\x00{series.last_ns}",
            severity="error" if drop >= 2 * std else "warning",
            summary=summary,
            now_ns=series.last_ns,
            evidence={
                "signal": "evaluation_score",
                "evaluation_name": series.evaluation,
                "reference_mean": round(mean, 4),
                "reference_std": round(std, 4),
                "reference_samples": len(series.reference),
                "recent_mean": round(recent_mean, 4),
                "recent_samples": len(series.recent),
                "drop": round(drop, 4),
                "p_value": p_value,
                "cusum": round(series.cusum, 3),
                "likely_causes": causes,
                "example_trace_id": series.last_trace_id,
                "as_of": iso(series.last_ns),
            },
            agent_name=series.agent_name,
            service_name=series.service_name,
            trace_id=series.last_trace_id,
        )

    @staticmethod
    def _recovered(series: _Series, mean: float, std: float) -> bool:
        recent = list(series.recent)
        if statistics.fmean(recent) < mean - 0.5 * std:
            return False
        return _lower_p_value(recent, series.reference) > _RESOLVE_P

    def tick(self, now_ns: int) -> None:
        return None  # scores arrive with spans; nothing changes without them

    def _settings(self, agent_name: str) -> QualityDriftConfig:
        return self._config.for_agent(agent_name).quality_drift

    def snapshot(self) -> dict[str, Any]:
        return {
            "series": [
                {
                    "tenant": s.tenant,
                    "agent_name": s.agent_name,
                    "evaluation": s.evaluation,
                    "service_name": s.service_name,
                    "reference": s.reference,
                    "recent": list(s.recent),
                    "cusum": s.cusum,
                    "last_ns": s.last_ns,
                    "last_trace_id": s.last_trace_id,
                    "finding": s.finding.as_dict() if s.finding else None,
                }
                for s in self._series.values()
            ]
        }

    def restore(self, state: dict[str, Any]) -> None:
        for data in state.get("series", []):
            series = _Series(
                data["tenant"], data["agent_name"], data["evaluation"], data["service_name"]
            )
            series.reference = list(data["reference"])
            series.recent = deque(data["recent"])
            series.cusum = data["cusum"]
            series.last_ns = data["last_ns"]
            series.last_trace_id = data["last_trace_id"]
            series.finding = Finding.from_dict(data["finding"]) if data["finding"] else None
            self._series[(series.tenant, series.agent_name, series.evaluation)] = series


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    std = statistics.pstdev(values, mean) if len(values) > 1 else 0.0
    return mean, max(std, _MIN_STD)


def _lower_p_value(recent: list[float], reference: list[float]) -> float:
    """One-sided Mann-Whitney U test: the p-value of `recent` being lower."""
    # scipy.stats is ~1 s of imports: paid by the first test, not by every importer.
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(recent, reference, alternative="less").pvalue)

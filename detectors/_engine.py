"""The detectors together: one `consume(spans)`, one `tick(now)`, one state to save."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from detectors._behaviour import BehaviourDriftDetector
from detectors._change_points import ChangePointDetector
from detectors._config import DetectorConfig
from detectors._cost_spike import CostSpikeDetector
from detectors._evaluation_join import EvaluationJoin
from detectors._findings import Finding, FindingLog, FindingSink
from detectors._governance import GovernanceDetector
from detectors._jobs import JobRegistry
from detectors._quality import QualityDriftDetector
from detectors._runaway import RunawayLoopDetector
from detectors._tool_failures import ToolFailureSpikeDetector
from detectors._zombie import ZombieRunDetector
from ingest import AgentSpan
from ingest._prices import PriceTable

_JOIN_STATE = "_evaluation_join"  # not a finding kind: no detector has this name


class Detector(Protocol):
    """A streaming detector: fed spans as they are stored, ticked by a clock (Unix ns).

    It reports findings to the sink it was built with, keeps bounded state, and can
    save and restore that state (plain JSON-able data).
    """

    kind: str

    def consume(self, spans: Sequence[AgentSpan]) -> None: ...

    def tick(self, now_ns: int) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def build_detectors(
    config: DetectorConfig, sink: FindingSink, prices: PriceTable | None = None
) -> list[Detector]:
    """Every detector; `prices` (None: the shipped table) prices LLM calls."""
    prices = PriceTable.load() if prices is None else prices
    changes = ChangePointDetector(config, sink)
    return [
        ZombieRunDetector(config, sink),
        RunawayLoopDetector(config, sink),
        ToolFailureSpikeDetector(config, sink),
        # Before quality_drift, so a change and the drift it causes in one batch link up.
        changes,
        QualityDriftDetector(config, sink, changes.recent_changes),
        BehaviourDriftDetector(config, sink, changes.recent_changes),
        CostSpikeDetector(config, sink, prices),
        GovernanceDetector(config, sink, prices),
    ]


class DetectorEngine:
    """Every detector, fed the same spans; findings collected until taken.

    Evaluation results that came as log records go to quality_drift alone, once the
    join has found their agent.
    """

    def __init__(self, config: DetectorConfig, prices: PriceTable | None = None) -> None:
        """`prices`: the price table LLM calls are costed with (None: the shipped one)."""
        self.config = config
        self._log = FindingLog()
        self.detectors = build_detectors(config, self._log, prices)
        self._join = EvaluationJoin()
        self._quality = next(d for d in self.detectors if isinstance(d, QualityDriftDetector))
        self._governance = next(d for d in self.detectors if isinstance(d, GovernanceDetector))

    def set_jobs(self, jobs: JobRegistry | None) -> None:
        """The agents' job descriptions (None: governance off)."""
        self._governance.set_jobs(jobs)

    def consume(self, spans: Sequence[AgentSpan]) -> None:
        spans, evaluations = self._join.split(spans)
        for detector in self.detectors:
            detector.consume(spans)
        if evaluations:
            self._quality.consume(evaluations)

    def tick(self, now_ns: int) -> None:
        expired = self._join.expire(now_ns)
        if expired:
            self._quality.consume(expired)
        for detector in self.detectors:
            detector.tick(now_ns)

    def extra_keys(self) -> tuple[str, ...]:
        """Span attributes some detector needs besides the conventions' own."""
        keys: set[str] = set()
        for detector in self.detectors:
            wanted = getattr(detector, "extra_keys", None)
            if wanted is not None:
                keys.update(wanted())
        return tuple(sorted(keys))

    def take_findings(self) -> list[Finding]:
        """Every finding version published since the last call (latest per finding)."""
        return self._log.take()

    def snapshot(self) -> dict[str, Any]:
        state = {detector.kind: detector.snapshot() for detector in self.detectors}
        state[_JOIN_STATE] = self._join.snapshot()
        return state

    def restore(self, state: dict[str, Any]) -> None:
        for detector in self.detectors:
            if detector.kind in state:
                detector.restore(state[detector.kind])
        self._join.restore(state.get(_JOIN_STATE, {}))

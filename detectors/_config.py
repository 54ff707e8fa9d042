"""Detector thresholds: the `detectors:` section of the YAML config, with defaults.

Every knob has a default that works for a typical agent; `overrides:` sets any of
them per agent name. Durations are strings such as "250ms", "30s", "5m", "6h", "1d".
Unknown keys and bad values are a one-line error naming the setting.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DetectorConfigError(ValueError):
    """A bad `detectors:` section; the message is one line naming the setting."""


def parse_duration(value: Any) -> float:
    """Seconds from "30s"-style text (a bare number is seconds)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '6h'")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration such as '30s', '5m' or '6h'")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ZombieRunConfig(_Section):
    enabled: bool = True
    # The idle threshold adapts to the agent's own gaps between steps:
    # max(min_idle, idle_multiplier x the idle_quantile of recent gaps) — or is `idle`.
    min_idle: Duration = 120.0
    idle: Duration | None = None
    idle_multiplier: float = Field(default=4.0, ge=1.0)
    idle_quantile: float = Field(default=0.99, gt=0.0, le=1.0)
    min_gap_samples: int = Field(default=20, ge=1)
    # From idle ≥ critical_after x threshold, the finding is critical.
    critical_after: float = Field(default=6.0, ge=1.0)
    # A run silent for this long is forgotten (its finding resolves as expired).
    forget_after: Duration = 48 * 3600.0


class RunawayLoopConfig(_Section):
    enabled: bool = True
    max_repeats: int = Field(default=3, ge=2)  # same tool + same arguments in one run
    max_cycle_repeats: int = Field(default=3, ge=2)  # a cycle of 2-3 tool calls, repeated
    max_steps: int = Field(default=500, ge=1)  # LLM and tool calls per run
    max_tokens: int = Field(default=2_000_000, ge=1)  # input + output tokens per run
    # The finding resolves when the run ends, or after this long without a new step.
    quiet: Duration = 600.0


class BurnRateWindow(_Section):
    """Fire when the failure rate is `burn_rate` x the baseline over both windows."""

    long: Duration
    short: Duration
    burn_rate: float = Field(gt=1.0)
    severity: Literal["warning", "error", "critical"] = "error"


class FailureAttribute(_Section):
    """A tool call that reports failure inside a "successful" result."""

    key: str = Field(min_length=1)
    equals: str


class ToolFailureSpikeConfig(_Section):
    enabled: bool = True
    min_calls: int = Field(default=20, ge=1)  # in the short window
    # The Google SRE workbook's multiwindow pages, against the tool's own baseline.
    windows: Annotated[tuple[BurnRateWindow, ...], Field(min_length=1)] = (
        BurnRateWindow(long=3600.0, short=300.0, burn_rate=14.4, severity="critical"),
        BurnRateWindow(long=6 * 3600.0, short=1800.0, burn_rate=6.0, severity="error"),
    )
    # burn_rate x baseline can pass 100% for tools that fail often: the rate needed is
    # capped here (a tool failing half its calls is an incident whatever its baseline).
    max_threshold_rate: float = Field(default=0.5, gt=0.0, le=1.0)
    # Binomial test: the short window's failures must be this unlikely at the baseline.
    max_p_value: float = Field(default=0.001, gt=0.0, lt=1.0)
    # A fixed baseline failure rate (an SLO's error budget) instead of the learnt one.
    baseline_rate: float | None = Field(default=None, gt=0.0, lt=1.0)
    # The learnt baseline: calls older than the longest window, halved every half-life,
    # starting from a prior worth `prior_calls` calls at `prior_rate`; never below
    # `min_baseline_rate`.
    baseline_half_life: Duration = 7 * 86400.0
    prior_rate: float = Field(default=0.05, gt=0.0, lt=1.0)
    prior_calls: int = Field(default=20, ge=0)
    min_baseline_rate: float = Field(default=0.01, gt=0.0, lt=1.0)
    # At most 8: the feed reads a bounded set of extra attributes.
    failure_attributes: Annotated[tuple[FailureAttribute, ...], Field(max_length=8)] = (
        FailureAttribute(key="tool.result.success", equals="false"),
    )


class ChangePointConfig(_Section):
    enabled: bool = True
    min_calls: int = Field(default=20, ge=1)  # established before a change counts
    confirm_calls: int = Field(default=5, ge=2)  # calls on the new model / tool / schema
    # New, not merely rare: (1 - its rate since it appeared) ^ calls before < this.
    max_p_value: float = Field(default=0.001, gt=0.0, lt=1.0)
    settle: Duration = 3600.0  # the change point resolves after this long


class QualityDriftConfig(_Section):
    enabled: bool = True
    reference_samples: int = Field(default=50, ge=5)  # the baseline: the first scores
    window: int = Field(default=30, ge=5)  # the recent scores compared with it
    min_samples: int = Field(default=20, ge=3)  # recent scores needed for a verdict
    cusum_k: float = Field(default=0.5, ge=0.0)  # CUSUM allowance, in reference std devs
    cusum_h: float = Field(default=5.0, gt=0.0)  # CUSUM alarm level, in reference std devs
    max_p_value: float = Field(default=0.01, gt=0.0, lt=1.0)  # Mann-Whitney U, one-sided
    min_drop: float = Field(default=0.05, ge=0.0)  # smallest mean drop worth a finding
    # Behaviour: runs' feature vectors, recent vs reference, by a classifier two-sample
    # test (drift when its out-of-bag ROC AUC passes behaviour_auc).
    behaviour: bool = True
    behaviour_reference_runs: int = Field(default=200, ge=20)
    behaviour_window_runs: int = Field(default=100, ge=20)
    behaviour_check_every: int = Field(default=50, ge=1)  # finished runs between checks
    # ...and at least this much span time between two checks of one agent: a check
    # costs ~0.05 s of CPU, and a busy agent finishes 50 runs in well under a second.
    # Behaviour drift is a slow, warning-level signal; the first check is not delayed.
    behaviour_check_interval: Duration = 900.0
    behaviour_auc: float = Field(default=0.7, gt=0.5, le=1.0)
    behaviour_resolve_auc: float = Field(default=0.6, gt=0.5, le=1.0)
    # Scores for evaluations that only give a label.
    labels: dict[str, float] = {
        "pass": 1.0,
        "true": 1.0,
        "correct": 1.0,
        "yes": 1.0,
        "good": 1.0,
        "fail": 0.0,
        "false": 0.0,
        "incorrect": 0.0,
        "no": 0.0,
        "bad": 0.0,
    }


class CostSpikeConfig(_Section):
    """An agent's LLM cost far above its own baseline (detectors/_cost_spike.py)."""

    enabled: bool = True
    # Cost rate: the agent's cost over the last `window` against its cost in past
    # periods of the same length (aligned, with at least one priced call).
    window: Duration = 3600.0
    baseline_periods: int = Field(default=168, ge=5)  # the periods kept (a week of hours)
    min_baseline_periods: int = Field(default=24, ge=5)  # before any verdict
    min_calls: int = Field(default=10, ge=1)  # priced LLM calls in the window
    min_z: float = Field(default=5.0, gt=0.0)  # robust z: (cost - median) / (1.4826 MAD)
    min_ratio: float = Field(default=3.0, gt=1.0)  # x the baseline's median period
    min_usd: float = Field(default=1.0, ge=0.0)  # cost in the window
    # Cost per run: a finished run against the agent's recent runs.
    runs: bool = True
    min_runs: int = Field(default=20, ge=5)  # finished runs before any verdict
    run_history: int = Field(default=200, ge=5)  # the recent runs kept
    # p99, not p95: an agent whose long conversations are 2% of its runs (3x its p95)
    # would page daily (measured by the detector benchmark).
    run_quantile: float = Field(default=0.99, gt=0.5, lt=1.0)
    run_ratio: float = Field(default=3.0, gt=1.0)  # x the run_quantile of recent runs
    min_run_usd: float = Field(default=0.5, ge=0.0)
    # From this many times the baseline (median period, or run quantile): error.
    error_ratio: float = Field(default=10.0, gt=1.0)
    # The finding resolves after this long with no check above its threshold.
    settle: Duration = 3600.0
    # An LLM call known only by its service waits this long for its trace's agent.
    attribution_wait: Duration = 300.0


class GovernanceConfig(_Section):
    """Checks against job descriptions (only once `--agents` loads some)."""

    # A scope violation or an exceeded budget resolves this long after its last call.
    settle: Duration = 3600.0
    # A step known only by its service waits this long for its trace to name the agent.
    attribution_wait: Duration = 300.0


class AgentSettings(_Section):
    """The thresholds that apply to one agent."""

    zombie_run: ZombieRunConfig = ZombieRunConfig()
    runaway_loop: RunawayLoopConfig = RunawayLoopConfig()
    tool_failure_spike: ToolFailureSpikeConfig = ToolFailureSpikeConfig()
    quality_drift: QualityDriftConfig = QualityDriftConfig()
    change_point: ChangePointConfig = ChangePointConfig()
    cost_spike: CostSpikeConfig = CostSpikeConfig()
    governance: GovernanceConfig = GovernanceConfig()


class _Document(AgentSettings):
    overrides: dict[str, dict[str, Any]] = {}


class DetectorConfig:
    """Defaults, and the per-agent settings that `overrides:` changes."""

    def __init__(self, defaults: AgentSettings, per_agent: dict[str, AgentSettings]) -> None:
        self.defaults = defaults
        self._per_agent = per_agent

    def for_agent(self, agent_name: str) -> AgentSettings:
        return self._per_agent.get(agent_name, self.defaults)

    def agents(self) -> list[AgentSettings]:
        """The settings of every agent with overrides."""
        return list(self._per_agent.values())

    @classmethod
    def from_dict(cls, section: dict[str, Any] | None) -> DetectorConfig:
        """Validate the `detectors:` section (None: every default)."""
        document = _validate(_Document, section or {}, "detectors")
        defaults = AgentSettings(**{k: v for k, v in document if k != "overrides"})
        per_agent = {}
        for agent, changes in document.overrides.items():
            if not isinstance(changes, dict):
                raise DetectorConfigError(f"detectors.overrides.{agent}: expected a mapping")
            merged = defaults.model_dump()
            for name, values in changes.items():
                if name in merged and isinstance(values, dict):
                    merged[name] = {**merged[name], **values}
                else:
                    merged[name] = values
            per_agent[agent] = _validate(AgentSettings, merged, f"detectors.overrides.{agent}")
        return cls(defaults, per_agent)


def _validate(model: type[Any], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join([where, *(str(part) for part in error["loc"])])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        raise DetectorConfigError(f"{location}: {message}") from None

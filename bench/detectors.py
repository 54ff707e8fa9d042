"""Detector benchmark: labelled agent traffic on event time, through the real detectors.

Three corpora of the simulated fleet of `tests/detectors/traffic.py` (`BENCH_FLEET`:
four agents, 3-15% background tool failures, each tool its own rate, an evaluation
score on every run of three of them), each starting with a warm-up in which the
detectors learn their baselines and nothing is scored (12 h; cost_spike's: 24 h, since
it judges an hour's cost against a day of hours at least — `min_baseline_periods` — and
a half-day baseline, night and morning only, makes every afternoon look expensive):

- the *incident corpus*: `--hours` of traffic with `--incidents` labelled incidents per
  detector — zombie runs, runaway loops, tool outages (a tool's failure rate jumps to
  40-60% for 1-2 h), slow decays of an agent's evaluation scores, model swaps (some
  followed by a quality drop) — between clean stretches;
- the *cost corpus*: `--incidents` token burns, cost_spike's incidents, in as many
  working days as they need (six a day) — for 60-90 min one agent's prompts balloon
  (8-12x the input tokens: the same model, calls and tools, so nothing but the cost
  changes; `COST_AGENTS` says when and on whom, and why). They have a corpus of their
  own because the model swaps are for good and change an agent's cost: a swap to a
  pricier model is real spend, and cost_spike reports it (such findings in the
  incident corpus are counted apart, not scored: see `score`), which would hide a burn
  of that agent for hours. It holds the burnt agents' traffic only and is replayed
  through cost_spike alone (a burn changes nothing any other detector reads);
- the *clean corpus*: `--clean-hours` (24 or more) of another day, without incidents.

All are replayed through a `DetectorEngine` with `SETTINGS` as `serve` feeds it: every
export request in delivery order, the engine ticked every second of event time.

A finding matches an incident when it is of the kind the incident should raise, names
its trace (zombies, loops) or its agent (under its own or its service's name, as ingest
attributes steps that arrive before their agent span) and tool, and opened between the
incident's start and its end plus a grace period (`GRACE_S`; a model swap is for good,
and the finding names the new model). A finding matching nothing is a false positive,
a second finding for an incident already found a duplicate. Per detector: precision
(matched findings / findings), recall, a NAB score, time to detect p50 / p95 from the
incident's onset, that p95 against the bound (`BOUNDS`, "two evaluation intervals"),
and false positives per 24 h of the clean corpus.

    .venv/bin/python -m bench.detectors                          # the README's table
    .venv/bin/python -m bench.detectors --hours 24 --incidents 8 --seed 7 --json
    .venv/bin/python -m bench.detectors --config my-detectors.yaml  # other thresholds
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from detectors import DetectorConfig, Finding
from ingest._prices import PriceTable
from tests.detectors.traffic import (
    BENCH_FLEET,
    EXPORT_INTERVAL_NS,
    NS,
    START_NS,
    GroundTruth,
    Incident,
    IncidentKind,
    Traffic,
    generate,
    profile,
    provider_of,
    replay,
)

H = 3600.0
DETECTORS = (
    "zombie_run",
    "runaway_loop",
    "tool_failure_spike",
    "quality_drift",
    "change_point",
    "cost_spike",
)
TICK_S = 1.0  # serve's ticker
# Long enough for every baseline to be learnt: zombie_run's gaps, tool_failure_spike's
# (calls older than its longest window), quality_drift's reference (200 scores: ~10 h
# for the least evaluated agent, from midnight).
WARMUP_H = 12.0
# cost_spike judges an hour's cost against a day of hours at least (its
# min_baseline_periods, 24 x its 1 h window: a shorter baseline holds only the night and
# the morning, and every afternoon looks expensive): it is scored after 24 h.
COST_WARMUP_H = 24.0
# Token burns (the cost corpus): what cost_spike is built to see — an hour's cost several
# times the agent's usual hour, while the agent is busy. Its threshold is 4-5.3x the
# median hour here (median + 5 robust std devs: the daily swing, 4:1, makes the MAD
# large), so a 6-10x burn at night, when an agent runs a quarter of its peak traffic,
# stays below it (seed 1, 30-90 min burns at any hour: the 9 that started between
# 00:00 and 06:00 peaked at 0.30-0.70 x the threshold, all missed). Burns start at
# 09:00, 13:15 or 17:30 (+ up to 30 min), last 60-90 min (a full window) and send
# 8-12x the input tokens (~7-10x the cost). On support-agent and billing-agent:
# faq-agent's hour costs cents (min_usd is $1), and research-agent's swings from $0.24
# to $6 (14 runs an hour at the peak, 8% of them long), so its threshold is $11-15:
# by day, a 31 min burn of 7.3x peaked at 0.84 x it, a 90 min one of 8.1x at 1.10 x.
COST_AGENTS = ("support-agent", "billing-agent")
BURN_SLOTS_H = (9.0, 13.25, 17.5)  # hours of the day
BURN_MINUTES = (60.0, 90.0)
BURN_FACTOR = (8.0, 12.0)  # a token burn's input tokens, x the usual
COST_DAY_END_H = 21.0  # the cost corpus ends at 21:00 of its last day

# -- the settings benchmarked ------------------------------------------------------------

# The defaults, but for three detectors:
# - tool_failure_spike: the SRE workbook's pairs (1 h / 5 m at 14.4x, 6 h / 30 m at 6x)
#   are made for error budgets of 0.1%; with 3-15% background failures and ~0.3-1.5
#   calls a minute per (agent, tool) they cannot fire (14.4 x 5% is past 50%) or take
#   hours. Scaled to this traffic: one pair, 1 h / 30 m, at 2x the tool's baseline (at
#   most 25%), 6 calls in the short window, and the binomial test at 1e-5, since it is
#   re-run on every batch for every (agent, tool).
# - quality_drift: a reference of 200 scores instead of 50 (judges' scores are
#   heavy-tailed: a few bad answers, or none, in a small reference skew it), and the
#   Mann-Whitney test at 1e-4 instead of 0.01, since it is re-run on every score once
#   CUSUM alarms. Its behaviour signal (run feature vectors) is off: nothing here is
#   labelled for it.
# - cost_spike: a run is judged against the p99 of the agent's last 200 runs, not the
#   p95. billing-agent's long conversations (2% of its runs, 15-30 turns) cost up to
#   $1.23, 3-3.6x its p95 ($0.34): at 3x the p95 they are 3 false positives per 24 h of
#   clean traffic. The run quantile has to sit above an agent's share of long runs.
SETTINGS: dict[str, Any] = {
    "tool_failure_spike": {
        "windows": [{"long": "1h", "short": "30m", "burn_rate": 2.0, "severity": "error"}],
        "min_calls": 6,
        "max_threshold_rate": 0.25,
        "max_p_value": 1e-5,
    },
    "quality_drift": {
        "reference_samples": 200,
        "max_p_value": 1e-4,
        "behaviour": False,
    },
}

# -- bounds on time to detect ("two evaluation intervals") and grace periods -------------

BOUNDS = {
    "zombie_run": "the first tick idle for the agent's (adaptive) idle threshold + 2 ticks",
    "runaway_loop": (
        "by the end of the 2nd step after the decisive one (or one export interval + 1 s "
        "after it, if later), and no later than the run's end is received"
    ),
    "tool_failure_spike": "2 x the (shortest) short window",
    "quality_drift": "2 x window evaluations after the decline reaches min_drop",
    "change_point": "2 x confirm_calls LLM calls on the new model",
    "cost_spike": "the window (or the whole burn, if shorter) + one bucket (window / 12)",
}
GRACE_S = {  # how long after an incident's end a finding is still about it
    "zombie_run": 60.0,
    "runaway_loop": 60.0,
    "tool_failure_spike": 1800.0,
    "quality_drift": 3600.0,
    "change_point": 0.0,  # a swap is for good: see _matches
    "cost_spike": 3600.0,  # the window still holds the burn's cost for up to 1 h
}
NEVER_ENDS_S = 3600.0  # a zombie that never resumes: its window, for matching
ZOMBIE_WATCH_S = 1800.0  # zombie_run's threshold is recorded this long after a stall

# NAB's standard profile (A_TP = 1, A_FP = -0.11, A_FN = -1). An incident's window runs
# from its onset for twice its bound: a detection at the onset scores ~1, at the bound
# 0.85, at the window's end 0; none (or only later) scores -1; a false positive -0.11.
NAB_TP, NAB_FP, NAB_FN = 1.0, 0.11, 1.0


def scaled_sigmoid(position: float) -> float:
    """NAB's reward for a detection at `position` (-1: the window's start, 0: its end)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


# -- the incidents -------------------------------------------------------------------------

_NEW_MODELS = {
    "openai": ["gpt-4.1", "gpt-4o", "gpt-4o-mini", "gpt-5-mini", "o3", "gpt-5", "o4-mini-high"],
    "anthropic": ["claude-sonnet-4.5", "claude-opus-4.1", "claude-haiku-4.5", "claude-3.7-sonnet"],
}
SWAP_SPACING_S = 2 * H  # between two swaps of one agent: each is confirmed first
_ZOMBIES: list[tuple[IncidentKind, str]] = [
    ("zombie_tool", "support-agent"),  # a tool call hangs after its pending marker
    ("zombie_heartbeats", "billing-agent"),  # an answer stops streaming: heartbeats stop
    ("zombie_tool", "research-agent"),
]
_LOOPS: list[tuple[IncidentKind, str]] = [
    ("repeated_call", "support-agent"),
    ("cycle", "research-agent"),
    ("repeated_call", "billing-agent"),
    ("step_budget", "research-agent"),
    ("cycle", "support-agent"),
    ("repeated_call", "research-agent"),
    ("cycle", "billing-agent"),
]


def schedule(
    seed: int, hours: float, per_detector: int, warmup_h: float = WARMUP_H
) -> list[Incident]:
    """`per_detector` incidents for each detector, in the `hours` after the warm-up."""
    rng = random.Random(f"{seed}:schedule")
    first, last = warmup_h * H, (warmup_h + hours) * H
    incidents: list[Incident] = []

    def at(margin_s: float) -> float:
        return rng.uniform(first, last - margin_s)

    for n in range(per_detector):
        kind, agent = _ZOMBIES[n % len(_ZOMBIES)]
        hang = rng.choice([None, rng.uniform(900, 2400)])  # None: never resumes
        give_up = rng.random() < 0.3
        incidents.append(Incident(kind, at(2 * H), agent, hang_s=hang, give_up=give_up))
    for n in range(per_detector):
        kind, agent = _LOOPS[n % len(_LOOPS)]
        repeats = {"repeated_call": rng.randint(3, 8), "cycle": rng.randint(3, 5)}.get(
            kind,
            rng.randint(255, 290),  # step_budget: 2 steps a turn, past 500
        )
        incidents.append(Incident(kind, at(2 * H), agent, repeats=repeats))
    # Tool outages: every agent calling the tool sees it; a tool is not hit twice
    # within 4 h.
    tools = sorted({(tool.name, agent.agent_name) for agent in BENCH_FLEET for tool in agent.tools})
    busy_until: dict[str, float] = {}
    for _ in range(per_detector):
        for _attempt in range(1000):
            tool, agent = rng.choice(tools)
            start, duration = at(3 * H), rng.uniform(3600, 7200)
            if start >= busy_until.get(tool, 0.0):
                break
        else:
            raise ValueError(f"--hours {hours} is too short for {per_detector} tool outages")
        busy_until[tool] = start + duration + 4 * H
        incidents.append(
            Incident(
                "tool_outage",
                start,
                agent,
                tool_name=tool,
                duration_s=duration,
                failure_rate=rng.uniform(0.4, 0.6),
            )
        )
    # Quality: slow decays, and model swaps followed by a drop; one at a time per
    # evaluated agent, each followed by 2 h back to normal.
    evaluated = [agent.agent_name for agent in BENCH_FLEET if agent.evaluation]
    free_at = dict.fromkeys(evaluated, first)
    swaps_with_drop = (per_detector + 2) // 4
    used: dict[str, set[str]] = {agent.agent_name: {agent.model} for agent in BENCH_FLEET}
    swaps: dict[str, list[float]] = {}

    def new_model(agent_name: str) -> tuple[str, str]:
        agent = profile(agent_name, BENCH_FLEET)
        provider = provider_of(agent)
        choices = [model for model in _NEW_MODELS[provider] if model not in used[agent_name]]
        model = rng.choice(choices) if choices else f"{agent.model}-v{len(used[agent_name])}"
        used[agent_name].add(model)
        return model, provider

    for n in range(per_detector):
        agent = min(evaluated, key=lambda name: (free_at[name], name))
        start = free_at[agent] + rng.uniform(0.5 * H, 2 * H)
        hold = rng.uniform(0.75 * H, 1.5 * H)
        drop = rng.uniform(0.2, 0.3)
        if n < swaps_with_drop:
            model, provider = new_model(agent)
            incident = Incident(
                "model_swap", start, agent, model=model, provider=provider, drop=drop, hold_s=hold
            )
            swaps.setdefault(agent, []).append(start)
            end = start + hold
        else:
            duration = rng.uniform(0.75 * H, 2 * H)
            incident = Incident(
                "quality_decay", start, agent, duration_s=duration, drop=drop, hold_s=hold
            )
            end = start + duration + hold
        if end + 2 * H > last:
            raise ValueError(f"--hours {hours} is too short for {per_detector} quality incidents")
        free_at[agent] = end + 2 * H
        incidents.append(incident)
    # Model swaps without a quality drop, on any agent.
    for _ in range(per_detector - swaps_with_drop):
        for _attempt in range(1000):
            agent = rng.choice([agent.agent_name for agent in BENCH_FLEET])
            start = at(2 * H)
            if all(abs(start - other) >= SWAP_SPACING_S for other in swaps.get(agent, [])):
                break
        else:
            raise ValueError(f"--hours {hours} is too short for {per_detector} model swaps")
        swaps.setdefault(agent, []).append(start)
        model, provider = new_model(agent)
        incidents.append(Incident("model_swap", start, agent, model=model, provider=provider))
    return sorted(incidents, key=lambda incident: incident.at_s)


def cost_days(per_detector: int) -> int:
    """The working days of the cost corpus (after its warm-up) for `per_detector` burns."""
    return max(1, math.ceil(per_detector / (len(COST_AGENTS) * len(BURN_SLOTS_H))))


def cost_hours(per_detector: int) -> float:
    """The cost corpus's length after its warm-up: up to the last day's evening."""
    return (cost_days(per_detector) - 1) * 24.0 + COST_DAY_END_H


def schedule_costs(seed: int, per_detector: int, warmup_h: float = COST_WARMUP_H) -> list[Incident]:
    """`per_detector` token burns for the cost corpus, in its working days after the warm-up.

    Each burn: one agent's prompts balloon (`BURN_FACTOR` x its input tokens) for
    `BURN_MINUTES`, from one of the day's `BURN_SLOTS_H` (+ up to 30 min), the agents
    and slots in turn. One agent's burns are 2 h 15 min apart at least: the window
    empties, then the finding settles, so each can raise a finding of its own.
    """
    rng = random.Random(f"{seed}:costs")
    incidents = []
    slots = [
        (warmup_h + 24.0 * day + hour, agent)
        for day in range(cost_days(per_detector))
        for hour in BURN_SLOTS_H
        for agent in COST_AGENTS
    ]
    for slot_h, agent in slots[:per_detector]:
        start = slot_h * H + rng.uniform(0.0, 0.5 * H)
        duration = rng.uniform(*BURN_MINUTES) * 60.0
        factor = rng.uniform(*BURN_FACTOR)
        incidents.append(Incident("token_burn", start, agent, duration_s=duration, factor=factor))
    return sorted(incidents, key=lambda incident: incident.at_s)


# -- one corpus: generate, replay, keep what scoring needs -------------------------------


@dataclass(slots=True)
class Corpus:
    """A replayed corpus: its findings, and the facts the bounds are computed from."""

    hours: float
    warmup_ns: int  # findings opened before this are the warm-up's
    end_ns: int
    runs: int
    spans: int
    findings: list[Finding]  # the latest version of each
    opened: dict[str, Finding]  # the first version of each, by id
    seen_at: dict[str, int]  # when each was first taken from the engine (replay clock)
    truth: list[GroundTruth]
    seconds: float
    # agent -> [(evaluation time, delivered at)], by evaluation time
    evaluations: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # agent -> [(end, delivered at, "provider/model")] of its LLM calls, by end
    llm_calls: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    # trace id -> the ends of its steps (LLM and tool calls), sorted
    step_ends: dict[str, list[int]] = field(default_factory=dict)
    # trace id -> when its agent span (the run's end) was delivered
    run_end_delivered: dict[str, int] = field(default_factory=dict)
    # agent (or service) name -> [(tick, zombie_run's idle threshold in s)] while a
    # zombie of it is stalled
    thresholds: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    # cost_spike's findings opened before this are the warm-up's (0: `warmup_ns`)
    cost_warmup_ns: int = 0

    def scored_from(self, detector: str) -> int:
        if detector == "cost_spike" and self.cost_warmup_ns:
            return self.cost_warmup_ns
        return self.warmup_ns


def run_corpus(
    hours: float,
    seed: int,
    incidents: Sequence[Incident] = (),
    *,
    warmup_h: float = WARMUP_H,
    cost_warmup_h: float = COST_WARMUP_H,
    settings: dict[str, Any] | None = None,
    agents: Sequence[str] = (),
) -> Corpus:
    """Generate `hours` of traffic after the later warm-up with `incidents`, and replay it.

    Each detector is scored on its `hours` after its own warm-up (cost_spike's:
    `cost_warmup_h`), so the traffic runs to the later one's end. `agents`: only these
    of the fleet (none: all)."""
    began = time.perf_counter()
    total_h = max(warmup_h, cost_warmup_h) + hours
    fleet = tuple(a for a in BENCH_FLEET if not agents or a.agent_name in agents)
    traffic = generate(total_h, seed=seed, fleet=fleet, incidents=incidents)
    config = SETTINGS if settings is None else settings
    watch = [
        (name, truth.onset_ns, truth.onset_ns + round(ZOMBIE_WATCH_S * NS))
        for truth in traffic.truth
        if truth.kind == "zombie_run"
        for name in truth.agent_names
    ]
    result = replay(traffic, config, tick_s=TICK_S, watch=watch, tick_on_delivery=False)
    corpus = Corpus(
        hours=hours,
        warmup_ns=traffic.start_ns + round(warmup_h * H * NS),
        end_ns=traffic.end_ns,
        runs=traffic.runs,
        spans=traffic.spans,
        findings=result.findings,
        opened={},
        seen_at=result.seen_at,
        truth=traffic.truth,
        seconds=0.0,
        thresholds=result.thresholds,
        cost_warmup_ns=traffic.start_ns + round(cost_warmup_h * H * NS),
    )
    for version in result.versions:
        corpus.opened.setdefault(version.id, version)
    if traffic.truth:
        _index(traffic, corpus)
    corpus.seconds = time.perf_counter() - began
    return corpus


def _index(traffic: Traffic, corpus: Corpus) -> None:
    aliases = {agent.service_name: agent.agent_name for agent in BENCH_FLEET}
    traces = {truth.trace_id for truth in traffic.truth if truth.trace_id}
    for batch in traffic.batches:
        for span in batch.spans:
            agent_name = aliases.get(span.agent_name, span.agent_name)
            for evaluation in span.evaluations:
                corpus.evaluations.setdefault(agent_name, []).append(
                    (evaluation.time_ns, batch.delivered_ns)
                )
            if span.marker:
                continue
            if span.operation == "chat" and span.model:
                model = f"{span.provider}/{span.model}" if span.provider else span.model
                corpus.llm_calls.setdefault(agent_name, []).append(
                    (span.end_ns, batch.delivered_ns, model)
                )
            if span.trace_id not in traces:
                continue
            if span.operation in ("chat", "execute_tool"):
                corpus.step_ends.setdefault(span.trace_id, []).append(span.end_ns)
            elif span.operation == "invoke_agent":
                corpus.run_end_delivered[span.trace_id] = batch.delivered_ns
    for evaluations in corpus.evaluations.values():
        evaluations.sort()
    for calls in corpus.llm_calls.values():
        calls.sort()
    for ends in corpus.step_ends.values():
        ends.sort()


# -- scoring -------------------------------------------------------------------------------


def row_of(finding: Finding) -> str:
    """The row a finding is scored in: its kind; quality_drift's behaviour signal apart."""
    signal = finding.evidence.get("signal", "evaluation_score")
    if finding.kind == "quality_drift" and signal != "evaluation_score":
        return f"quality_drift ({signal})"
    return finding.kind


def _matches(finding: Finding, truth: GroundTruth) -> bool:
    if row_of(finding) != truth.kind or finding.opened_at_ns < truth.start_ns:
        return False
    if truth.kind == "change_point":  # a swap is for good; the finding names the model
        return (
            finding.agent_name in truth.agent_names
            and finding.evidence.get("change") == "model"
            and finding.evidence.get("to") == truth.model
        )
    end_ns = truth.end_ns or truth.onset_ns + round(NEVER_ENDS_S * NS)
    if finding.opened_at_ns > end_ns + round(GRACE_S[truth.kind] * NS):
        return False
    if truth.trace_id:
        return finding.trace_id == truth.trace_id
    if finding.agent_name not in truth.agent_names:
        return False
    return truth.kind != "tool_failure_spike" or finding.tool_name == truth.tool_name


def _bound_ns(truth: GroundTruth, finding: Finding, corpus: Corpus, config: DetectorConfig) -> int:
    """The latest opening time that meets the bar for this incident (see BOUNDS)."""
    agent_name = truth.incident.agent_name
    settings = config.for_agent(agent_name)
    if truth.kind == "zombie_run":
        # The threshold adapts as the agent's gaps are learnt: due at the first tick at
        # which the run had been idle for the threshold of that tick.
        due = next(
            (
                tick
                for tick, threshold_s in corpus.thresholds.get(finding.agent_name, [])
                if threshold_s * NS <= tick - truth.onset_ns <= ZOMBIE_WATCH_S * NS
            ),
            truth.onset_ns + round(ZOMBIE_WATCH_S * NS),
        )
        return due + round(2 * TICK_S * NS)
    if truth.kind == "runaway_loop":
        later = [end for end in corpus.step_ends.get(truth.trace_id, []) if end > truth.onset_ns]
        by_steps = later[1] if len(later) >= 2 else truth.onset_ns
        bound = max(by_steps, truth.onset_ns + EXPORT_INTERVAL_NS + NS)
        # ... and while the run goes: no later than its end reaches agentwatch
        return min(bound, corpus.run_end_delivered.get(truth.trace_id, bound))
    if truth.kind == "tool_failure_spike":
        short_s = min(window.short for window in settings.tool_failure_spike.windows)
        return truth.onset_ns + round(2 * short_s * NS)
    if truth.kind == "quality_drift":
        quality = settings.quality_drift
        incident = truth.incident
        reportable = truth.onset_ns
        if incident.kind == "quality_decay":  # linear: min_drop is reached this far in
            share = min(1.0, quality.min_drop / incident.drop)
            reportable += round(share * incident.duration_s * NS)
        evaluations = corpus.evaluations.get(agent_name, [])
        delivered = [at for time_ns, at in evaluations if time_ns >= reportable]
        wanted = 2 * quality.window
        return delivered[wanted - 1] if len(delivered) >= wanted else corpus.end_ns
    if truth.kind == "cost_spike":  # the window filled with the burn (or all of it)
        window_s = settings.cost_spike.window
        burn_s = min(truth.incident.duration_s, window_s) + window_s / 12
        return truth.onset_ns + round(burn_s * NS)
    wanted = 2 * settings.change_point.confirm_calls
    calls = sorted(
        at
        for end, at, model in corpus.llm_calls.get(agent_name, [])
        if model == truth.model and end >= truth.onset_ns
    )
    return calls[wanted - 1] if len(calls) >= wanted else corpus.end_ns


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by nearest rank (None: no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(slots=True)
class Detection:
    """One labelled incident and what became of it."""

    detector: str
    incident: str  # its kind, agent, tool / trace / model
    onset_h: float  # hours from the start of the corpus
    found: bool
    delay_s: float | None = None
    allowed_s: float | None = None
    summary: str = ""


@dataclass(slots=True)
class Row:
    detector: str
    incidents: int = 0
    found: int = 0
    findings: int = 0  # opened after the warm-up, in the incident corpus
    false_positives: int = 0
    duplicates: int = 0
    precision: float | None = None
    recall: float | None = None
    nab: float | None = None
    ttd_p50_s: float | None = None
    ttd_p95_s: float | None = None
    ttd_p95_of_bound: float | None = None  # p95 of (time to detect / allowed time)
    late: int = 0  # found after the bound
    clean_findings: int = 0  # opened after the warm-up, in the clean corpus
    fp_per_24h: float | None = None
    warmup_findings: int = 0  # not scored
    explained: int = 0  # cost_spike: real spend after a pricier model swap, not scored
    false_positive_examples: list[str] = field(default_factory=list)


def score(
    labelled: Corpus,
    clean: Corpus,
    config: DetectorConfig,
    costs: Corpus | None = None,
) -> tuple[dict[str, Row], list[Detection]]:
    """Score the incident corpus, the cost corpus (token burns) if any, and the clean one.

    In the incident corpus, a cost_spike finding about an agent whose model was swapped
    for a pricier one in the 24 h before is real spend, not a false positive: it is
    counted apart (`explained`), neither found nor false.
    """
    rows = {kind: Row(kind) for kind in DETECTORS}

    def row(name: str) -> Row:
        return rows.setdefault(name, Row(name))

    def example(finding: Finding, where: str) -> str:
        return f"{where} {_hours(finding.opened_at_ns):.2f} h: {finding.summary}"

    nab = dict.fromkeys(rows, 0.0)
    detections = []
    delays: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    corpora = [("incident corpus", labelled)]
    if costs is not None:
        corpora.append(("cost corpus", costs))
    for where, corpus in corpora:
        swaps = _pricier_swaps(corpus.truth)
        first: dict[int, Finding] = {}  # incident -> the finding that found it
        for finding in sorted(corpus.findings, key=lambda f: f.opened_at_ns):
            this = row(row_of(finding))
            if finding.opened_at_ns < corpus.scored_from(this.detector):
                this.warmup_findings += 1
                continue
            about = [n for n, truth in enumerate(corpus.truth) if _matches(finding, truth)]
            new = [n for n in about if n not in first]
            if not about and this.detector == "cost_spike" and _explained(finding, swaps):
                this.explained += 1
                continue
            this.findings += 1
            if new:
                first[min(new, key=lambda n: corpus.truth[n].start_ns)] = finding
            elif about:
                this.duplicates += 1
            else:
                this.false_positives += 1
                nab[this.detector] = nab.get(this.detector, 0.0) - NAB_FP
                if len(this.false_positive_examples) < 5:
                    this.false_positive_examples.append(example(finding, where))
        for n, truth in enumerate(corpus.truth):
            this = row(truth.kind)
            this.incidents += 1
            incident = truth.incident
            what = incident.tool_name or truth.model or truth.trace_id
            detection = Detection(
                truth.kind,
                f"{incident.kind} {incident.agent_name} {what}".strip(),
                round(_hours(truth.onset_ns), 2),
                found=n in first,
            )
            detections.append(detection)
            found = first.get(n)
            if found is None:
                nab[truth.kind] -= NAB_FN
                continue
            this.found += 1
            delay_ns = max(0, corpus.seen_at[found.id] - truth.onset_ns)
            allowed_ns = max(1, _bound_ns(truth, found, corpus, config) - truth.onset_ns)
            detection.delay_s = round(delay_ns / NS, 1)
            detection.allowed_s = round(allowed_ns / NS, 1)
            detection.summary = found.summary
            delays.setdefault(truth.kind, []).append(delay_ns / NS)
            ratios.setdefault(truth.kind, []).append(delay_ns / allowed_ns)
            this.late += delay_ns > allowed_ns
            position = (delay_ns - 2 * allowed_ns) / (2 * allowed_ns)
            if position <= 0:
                nab[truth.kind] += NAB_TP * scaled_sigmoid(position)
            else:  # after the window: a miss, and a (small) false positive
                nab[truth.kind] += -NAB_FN + NAB_FP * scaled_sigmoid(position)
    clean_ns = round(clean.hours * H * NS)
    for finding in clean.findings:
        this = row(row_of(finding))
        scored_from = clean.scored_from(this.detector)
        if finding.opened_at_ns < scored_from:
            this.warmup_findings += 1
            continue
        if finding.opened_at_ns > scored_from + clean_ns:
            continue  # each detector is judged on `hours` of the clean corpus
        this.clean_findings += 1
        if len(this.false_positive_examples) < 5:
            this.false_positive_examples.append(example(finding, "clean corpus"))
    for name, this in rows.items():
        if this.findings:
            this.precision = round((this.findings - this.false_positives) / this.findings, 4)
        if this.incidents:
            this.recall = round(this.found / this.incidents, 4)
            perfect = this.incidents * NAB_TP * scaled_sigmoid(-1.0)
            null = -this.incidents * NAB_FN
            this.nab = round(100 * (nab[name] - null) / (perfect - null), 1)
        this.fp_per_24h = round(this.clean_findings / (clean.hours / 24.0), 2)
        this.ttd_p50_s = _rounded(percentile(delays.get(name, []), 0.5), 1)
        this.ttd_p95_s = _rounded(percentile(delays.get(name, []), 0.95), 1)
        this.ttd_p95_of_bound = _rounded(percentile(ratios.get(name, []), 0.95), 3)
    return rows, detections


SWAP_EXPLAINS_S = 24 * H  # a pricier model raises the cost until a day of it is the usual


def _pricier_swaps(truth: Sequence[GroundTruth]) -> dict[str, list[int]]:
    """Agent (and service) name -> when its model was swapped for a pricier one.

    Pricier: the new model's input price (the shipped price table's) is higher, or the
    old one has no price and the new one has."""
    prices = PriceTable.load()
    current = {
        agent.agent_name: (agent.model, provider_of(agent), agent.service_name)
        for agent in BENCH_FLEET
    }
    swaps: dict[str, list[int]] = {}
    for item in sorted(truth, key=lambda t: t.start_ns):
        if item.kind != "change_point":
            continue
        agent_name = item.incident.agent_name
        old_model, old_provider, service = current[agent_name]
        new_provider, _, new_model = item.model.partition("/")
        old = prices.find(old_model, old_provider, item.start_ns)
        new = prices.find(new_model, new_provider, item.start_ns)
        if new is not None and (old is None or new.input > old.input):
            for name in (agent_name, service):
                swaps.setdefault(name, []).append(item.start_ns)
        current[agent_name] = (new_model, new_provider, service)
    return swaps


def _explained(finding: Finding, swaps: dict[str, list[int]]) -> bool:
    return any(
        0 <= finding.opened_at_ns - at <= SWAP_EXPLAINS_S * NS
        for at in swaps.get(finding.agent_name, [])
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _hours(ns: int) -> float:
    return (ns - START_NS) / NS / H


# -- bars ----------------------------------------------------------------------------------

MIN_PRECISION = 0.95
MIN_RECALL = 0.95
MAX_FP_PER_24H = 1.0


def bars_missed(rows: dict[str, Row]) -> list[str]:
    """The bars the five detectors miss (none: every bar met)."""
    missed = []
    for kind in DETECTORS:
        row = rows[kind]
        if row.precision is not None and row.precision < MIN_PRECISION:
            missed.append(f"{kind}: precision {row.precision} < {MIN_PRECISION}")
        if row.recall is None or row.recall < MIN_RECALL:
            missed.append(f"{kind}: recall {row.recall} < {MIN_RECALL}")
        if row.ttd_p95_of_bound is not None and row.ttd_p95_of_bound > 1.0:
            missed.append(f"{kind}: p95 time to detect is {row.ttd_p95_of_bound} x its bound")
        if row.fp_per_24h is not None and row.fp_per_24h > MAX_FP_PER_24H:
            missed.append(f"{kind}: {row.fp_per_24h} false positives per 24 h of clean traffic")
    return missed


# -- the run -------------------------------------------------------------------------------


@dataclass(slots=True)
class Report:
    seed: int
    hours: float
    clean_hours: float
    warmup_hours: float
    cost_warmup_hours: float
    per_detector: int
    corpora: dict[str, dict[str, Any]]
    settings: dict[str, Any]  # the `detectors:` section replayed (the rest: defaults)
    bounds: dict[str, str]
    rows: dict[str, Row]
    detections: list[Detection]
    bars_missed: list[str]
    seconds: float


def benchmark(
    *,
    seed: int = 1,
    hours: float = 42.0,
    clean_hours: float = 24.0,
    per_detector: int = 20,
    warmup_h: float = WARMUP_H,
    cost_warmup_h: float = COST_WARMUP_H,
    settings: dict[str, Any] | None = None,
    jobs: int = 2,
) -> Report:
    """Generate and replay both corpora (in two processes with `jobs` 2), and score them."""
    began = time.perf_counter()
    settings = SETTINGS if settings is None else settings
    config = DetectorConfig.from_dict(settings)
    incidents = schedule(seed, hours, per_detector, warmup_h)
    burns = schedule_costs(seed, per_detector, cost_warmup_h)
    # The cost corpus is replayed through cost_spike alone, and holds the burnt agents
    # only: a burn changes nothing but the input tokens of one agent's LLM calls
    # (tests/detectors/test_benchmark.py checks it span by span), cost_spike keeps one
    # series per agent, and the rest would only take time (the other detectors, 3/4 of
    # a replay's; the other agents, a third of the spans).
    cost_only = {
        **settings,
        **{kind: {**settings.get(kind, {}), "enabled": False} for kind in DETECTORS[:-1]},
    }
    # The incident corpus is scored from warmup_h for every detector (cost_spike's
    # findings there: see score); the cost and clean corpora from cost_warmup_h for
    # cost_spike. Two processes share the three.
    jobs_args: list[tuple[Any, ...]] = [
        (hours, seed, incidents, warmup_h, settings, ()),
        (clean_hours, seed + 1_000_003, (), cost_warmup_h, settings, ()),
        (cost_hours(per_detector), seed + 2_000_003, burns, cost_warmup_h, cost_only, COST_AGENTS),
    ]
    options: dict[str, Any] = {"warmup_h": warmup_h}
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(run_corpus, h, s, i, cost_warmup_h=c, settings=o, agents=a, **options)
                for h, s, i, c, o, a in jobs_args
            ]
            labelled, clean, costs = (future.result() for future in futures)
    else:
        labelled, clean, costs = (
            run_corpus(h, s, i, cost_warmup_h=c, settings=o, agents=a, **options)
            for h, s, i, c, o, a in jobs_args
        )
    rows, detections = score(labelled, clean, config, costs)
    return Report(
        seed=seed,
        hours=hours,
        clean_hours=clean_hours,
        warmup_hours=warmup_h,
        cost_warmup_hours=cost_warmup_h,
        per_detector=per_detector,
        corpora={
            name: {
                "hours": c.hours,
                "runs": c.runs,
                "spans": c.spans,
                "seconds": round(c.seconds, 1),
            }
            for name, c in (("incidents", labelled), ("clean", clean), ("costs", costs))
        },
        settings=settings,
        bounds=BOUNDS,
        rows=rows,
        detections=detections,
        bars_missed=bars_missed(rows),
        seconds=round(time.perf_counter() - began, 1),
    )


def _cell(value: float | None, template: str = "{:.2f}") -> str:
    return "-" if value is None else template.format(value)


def table(report: Report) -> str:
    lines = [
        "| detector | incidents | found | findings | FP | dup | precision | recall | NAB "
        "| TTD p50 | TTD p95 | p95 / bound | FP / 24 h clean |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, row in report.rows.items():
        lines.append(
            f"| {name} | {row.incidents} | {row.found} | {row.findings} "
            f"| {row.false_positives} | {row.duplicates} | {_cell(row.precision)} "
            f"| {_cell(row.recall)} | {_cell(row.nab, '{:.1f}')} "
            f"| {_cell(row.ttd_p50_s, '{:.0f} s')} | {_cell(row.ttd_p95_s, '{:.0f} s')} "
            f"| {_cell(row.ttd_p95_of_bound)} | {_cell(row.fp_per_24h)} |"
        )
    return "\n".join(lines)


def render(report: Report) -> str:
    labelled, clean = report.corpora["incidents"], report.corpora["clean"]
    costs = report.corpora["costs"]
    out = [
        f"seed {report.seed}: incident corpus {report.hours:g} h ({labelled['runs']} runs, "
        f"{labelled['spans']} spans, {report.per_detector} incidents per detector but "
        f"cost_spike), clean corpus {report.clean_hours:g} h ({clean['runs']} runs, "
        f"{clean['spans']} spans), each after a {report.warmup_hours:g} h warm-up (not "
        f"scored); cost corpus {costs['hours']:g} h ({costs['runs']} runs, {costs['spans']} "
        f"spans, {report.per_detector} token burns, replayed through cost_spike alone), "
        f"cost_spike scored after a {report.cost_warmup_hours:g} h warm-up in it and in the "
        "clean corpus",
        "",
        table(report),
        "",
        "TTD: time to detect, from the onset (a zombie's last activity, a loop's decisive "
        "step, an outage's or a decay's start, a swap) to when the finding is first out of "
        "the engine (a request's delivery or a tick). Bounds (p95 / bound <= 1 meets it):",
    ]
    out += [f"  {kind}: {text}" for kind, text in report.bounds.items()]
    out.append("Settings (the rest: defaults): " + json.dumps(report.settings))
    for name, row in report.rows.items():
        notes = [f"false positive, {example}" for example in row.false_positive_examples]
        notes += [
            f"late: {d.incident} found after {d.delay_s:g} s (bound {d.allowed_s:g} s)"
            for d in report.detections
            if d.detector == name and d.found and (d.delay_s or 0) > (d.allowed_s or 0)
        ]
        notes += [
            f"missed: {d.incident} at {d.onset_h:g} h"
            for d in report.detections
            if d.detector == name and not d.found
        ]
        if row.warmup_findings:
            notes.append(f"{row.warmup_findings} finding(s) in the warm-ups, not scored")
        if row.explained:
            notes.append(
                f"{row.explained} finding(s) in the incident corpus after a swap to a "
                "pricier model: real spend, not scored"
            )
        if notes:
            out.append(f"{name}:")
            out += [f"  {note}" for note in notes]
    verdict = (
        "every bar met"
        if not report.bars_missed
        else "BARS MISSED: " + "; ".join(report.bars_missed)
    )
    out += ["", f"{verdict} ({report.seconds:g} s)"]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.detectors", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--hours", type=float, default=42.0, help="incident corpus, after warm-up")
    parser.add_argument("--clean-hours", type=float, default=24.0, help="clean corpus (>= 24)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incidents", type=int, default=20, help="incidents per detector")
    parser.add_argument(
        "--config",
        type=Path,
        help="a YAML or JSON `detectors:` section to replay instead of SETTINGS ({} = defaults)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="1: both corpora in this process")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    settings = None
    if args.config is not None:
        loaded = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        settings = loaded.get("detectors", loaded)
    report = benchmark(
        seed=args.seed,
        hours=args.hours,
        clean_hours=args.clean_hours,
        per_detector=args.incidents,
        settings=settings,
        jobs=args.jobs,
    )
    print(json.dumps(asdict(report), indent=2) if args.json else render(report))
    return 1 if report.bars_missed else 0


if __name__ == "__main__":
    sys.exit(main())

"""Seeded, deterministic agent traffic for replaying the detectors on event time.

A simulated fleet of agents (several processes each) runs many runs in parallel; every
run is an `invoke_agent` span around a loop of steps: a `chat` LLM call, then tool calls
(sometimes several in parallel, sometimes failing and retried with corrected arguments).
The traffic reaches agentwatch the way an OTLP exporter delivers it:

- a span is exported when it *ends*, by its process's batch processor, which flushes
  every 5 s of event time — so a run's steps arrive before its root, and a step that
  hangs sends nothing at all;
- agents using agentwatch_sdk's `PendingSpanProcessor` also send a zero-duration
  `pending` marker when an agent span *starts*; agents calling `heartbeat()` send one
  from their loop (and while an LLM answer streams in) at most every 5 s;
- ingest attributes each span to its agent and run from the span itself, else from the
  enclosing spans it has already received (`EnclosingResolver`, as in `serve`), else
  the service name and the trace id — the fields a detector sees.

Randomness is seeded per run, so the healthy traffic is the same with or without
injected incidents (`Incident`). Run incidents (zombies, loops) add runs of their own;
condition incidents change what the healthy runs meet from a point in event time: a
tool outage (its failure rate jumps, then recovers), a slow decay of an agent's
evaluation scores, a model swap (optionally with a quality drop), a token burn (an
agent's prompts balloon for a while: the same model and calls, several times the
cost). Every incident records its ground truth (`GroundTruth`: the finding kind it
should raise, about whom, and when). `generate` returns the export requests in
delivery order; `replay` feeds them to a `DetectorEngine`, ticking it on event time,
and collects every finding version.

`FLEET` is the fleet of the replay tests; `BENCH_FLEET` (the detector benchmark's) is
the same fleet with 3-15% background tool failures, each tool its own rate, some
reported inside a "successful" result (`tool.result.success = "false"`), an
evaluation score on every run of the agents that are evaluated, and every model one
that ingest/prices.yaml prices.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from detectors import DetectorConfig, DetectorEngine, Finding
from detectors._zombie import ZombieRunDetector
from ingest import AgentSpan, Evaluation
from ingest._enclosing import EnclosingResolver, SpanLink, announced_link

NS = 1_000_000_000
MS = 1_000_000
START_NS = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z, a quiet hour
TENANT = "acme"
EXPORT_INTERVAL_NS = 5 * NS  # BatchSpanProcessor's schedule delay
HEARTBEAT_INTERVAL_NS = 5 * NS  # agentwatch_sdk's heartbeat rate limit
HEALTH_CHECK_INTERVAL_NS = 60 * NS
# What a healthy agent's own guard (max turns, spend limit) stops a run at: below the
# runaway_loop defaults (500 steps, 2M tokens).
GUARD_STEPS = 440
GUARD_TOKENS = 1_500_000
SUCCESS_ATTRIBUTE = "tool.result.success"  # a tool's own verdict, on tools that report one
_NO_ATTRIBUTES: dict[str, str] = {}


# -- the fleet -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    param: str  # the main argument
    median_s: float
    timeout_s: float  # the client's timeout: the call fails then
    error_rate: float  # other failures (the tool reports an error)
    http: bool = False  # calls an HTTP API (a client span under the tool span)
    pool: int = 0  # values of `param` within one run (0: a fresh value each call)
    # The share of its failures reported inside a "successful" result (the span is OK,
    # `tool.result.success` is "false"); such a tool reports "true" when it succeeds.
    soft_failures: float = 0.0


@dataclass(frozen=True, slots=True)
class AgentProfile:
    agent_name: str
    service_name: str
    instances: int
    peak_runs_per_hour: float  # arrivals at the daily peak (a quarter of it at night)
    pending_markers: bool  # uses agentwatch_sdk's PendingSpanProcessor
    heartbeats: bool  # calls agentwatch_sdk.heartbeat() in its loop and while streaming
    # The span around invoke_agent: an HTTP server span or a queue consumer's in the same
    # process; a caller's in another system (never received); or none (a root).
    entry: Literal["http", "queue", "remote", "none"]
    conversation_ids: bool  # gen_ai.conversation.id on the agent span
    turns: tuple[int, int]  # loop turns of a typical run (uniform)
    long_run_share: float
    long_turns: tuple[int, int]
    model: str
    llm_median_s: float
    slow_llm_share: float  # answers taking 20-90 s
    base_context: int  # input tokens of the first LLM call
    max_context: int  # the agent compacts its context beyond this
    parallel_tools_share: float
    tools: tuple[Tool, ...]
    provider: str = ""  # gen_ai.provider.name of its LLM calls ("": from the model's name)
    # An evaluation scored on each of its runs (gen_ai.evaluation.result on the agent
    # span, "": none): a noisy score around `quality`, and now and then a bad answer.
    evaluation: str = ""
    quality: float = 0.85
    quality_noise: float = 0.05
    bad_answer_share: float = 0.03  # scored 0.1-0.5


FLEET: tuple[AgentProfile, ...] = (
    AgentProfile(
        agent_name="support-agent",
        service_name="support-api",
        instances=3,
        peak_runs_per_hour=110,
        pending_markers=True,
        heartbeats=True,
        entry="http",
        conversation_ids=True,
        turns=(2, 7),
        long_run_share=0.03,
        long_turns=(15, 45),
        model="gpt-4.1-mini",
        llm_median_s=1.8,
        slow_llm_share=0.04,
        base_context=2_400,
        max_context=16_000,
        parallel_tools_share=0.15,
        tools=(
            Tool("crm.lookup_customer", "customer_id", 0.25, 10, 0.01, http=True, pool=1),
            Tool("tickets.search", "query", 0.6, 15, 0.02, http=True),
            Tool("tickets.get", "ticket_id", 0.2, 10, 0.01, http=True, pool=3),
            Tool("orders.get", "order_id", 0.3, 10, 0.03, http=True, pool=3),
            Tool("kb.search", "query", 0.8, 20, 0.01),
            Tool("refunds.create", "order_id", 1.2, 30, 0.05, http=True),
            Tool("email.send", "to", 0.9, 20, 0.02, http=True),
        ),
    ),
    AgentProfile(
        agent_name="research-agent",
        service_name="research-worker",
        instances=2,
        peak_runs_per_hour=14,
        pending_markers=True,
        heartbeats=False,
        entry="queue",
        conversation_ids=False,
        turns=(8, 40),
        long_run_share=0.08,
        long_turns=(60, 180),
        model="o4-mini",
        llm_median_s=5.0,
        slow_llm_share=0.15,
        base_context=2_500,
        max_context=14_000,
        parallel_tools_share=0.25,
        tools=(
            Tool("web.search", "query", 1.2, 20, 0.02, http=True),
            Tool("web.fetch", "url", 2.0, 30, 0.06, http=True),
            Tool("arxiv.search", "query", 1.5, 20, 0.02, http=True),
            Tool("pdf.read", "url", 3.0, 30, 0.03),
            Tool("python.run", "code", 2.5, 30, 0.08),
            Tool("notes.write", "key", 0.1, 5, 0.0),
        ),
    ),
    AgentProfile(
        agent_name="billing-agent",
        service_name="billing-svc",
        instances=2,
        peak_runs_per_hour=40,
        pending_markers=False,
        heartbeats=True,
        entry="remote",
        conversation_ids=True,
        turns=(2, 9),
        long_run_share=0.02,
        long_turns=(15, 30),
        model="claude-sonnet-4",
        llm_median_s=1.6,
        slow_llm_share=0.05,
        base_context=3_000,
        max_context=20_000,
        parallel_tools_share=0.1,
        tools=(
            Tool("customer.get", "customer_id", 0.2, 10, 0.01, http=True, pool=1),
            Tool("ledger.get_invoice", "invoice_id", 0.4, 15, 0.02, http=True, pool=4),
            Tool("payments.get", "payment_id", 0.5, 15, 0.03, http=True, pool=3),
            Tool("payments.refund", "payment_id", 2.0, 30, 0.08, http=True),
            Tool("tax.compute", "region", 0.8, 20, 0.02),
        ),
    ),
    AgentProfile(
        agent_name="faq-agent",
        service_name="helpdesk-bot",
        instances=2,
        peak_runs_per_hour=60,
        pending_markers=False,
        heartbeats=False,
        entry="http",
        conversation_ids=False,
        turns=(1, 3),
        long_run_share=0.0,
        long_turns=(1, 1),
        model="gpt-4.1-nano",
        llm_median_s=0.9,
        slow_llm_share=0.03,
        base_context=1_500,
        max_context=8_000,
        parallel_tools_share=0.0,
        tools=(Tool("kb.search", "query", 0.5, 10, 0.01),),
    ),
)


# Background failure rates (3-15%, each tool its own) and the share reported inside a
# successful result, per tool of BENCH_FLEET; and the agents whose runs are evaluated.
_BENCH_FAILURES: dict[str, dict[str, tuple[float, float]]] = {
    "support-agent": {
        "crm.lookup_customer": (0.03, 0.0),
        "tickets.search": (0.05, 0.3),
        "tickets.get": (0.04, 0.0),
        "orders.get": (0.07, 0.2),
        "kb.search": (0.03, 0.5),
        "refunds.create": (0.12, 0.4),
        "email.send": (0.06, 0.0),
    },
    "research-agent": {
        "web.search": (0.04, 0.0),
        "web.fetch": (0.15, 0.1),
        "arxiv.search": (0.05, 0.0),
        "pdf.read": (0.08, 0.3),
        "python.run": (0.13, 0.5),
        "notes.write": (0.03, 0.0),
    },
    "billing-agent": {
        "customer.get": (0.03, 0.0),
        "ledger.get_invoice": (0.06, 0.2),
        "payments.get": (0.05, 0.0),
        "payments.refund": (0.14, 0.5),
        "tax.compute": (0.04, 0.3),
    },
    "faq-agent": {"kb.search": (0.03, 0.5)},
}
_BENCH_EVALUATIONS = {
    "support-agent": "answer_quality",
    "billing-agent": "answer_quality",
    "faq-agent": "answer_relevance",
}


# The response model Anthropic reports, which ingest/prices.yaml prices ("claude-sonnet-4"
# is no model id, so cost_spike would count billing-agent's calls as unpriced).
_BENCH_MODELS = {"billing-agent": "claude-sonnet-4-20250514"}


def _bench_profile(agent: AgentProfile) -> AgentProfile:
    rates = _BENCH_FAILURES[agent.agent_name]
    tools = tuple(
        replace(tool, error_rate=rates[tool.name][0], soft_failures=rates[tool.name][1])
        for tool in agent.tools
    )
    return replace(
        agent,
        tools=tools,
        evaluation=_BENCH_EVALUATIONS.get(agent.agent_name, ""),
        model=_BENCH_MODELS.get(agent.agent_name, agent.model),
    )


BENCH_FLEET: tuple[AgentProfile, ...] = tuple(_bench_profile(agent) for agent in FLEET)


def profile(agent_name: str, fleet: Sequence[AgentProfile] = FLEET) -> AgentProfile:
    return next(p for p in fleet if p.agent_name == agent_name)


def provider_of(agent: AgentProfile, model: str = "") -> str:
    """The provider of the agent's LLM calls: its own, else read from the model's name."""
    if agent.provider:
        return agent.provider
    name = model or agent.model
    if name.startswith("claude"):
        return "anthropic"
    if name.startswith("gemini"):
        return "gcp.gemini"
    return "openai"


# -- incidents -----------------------------------------------------------------------

IncidentKind = Literal[
    "zombie_tool",
    "zombie_heartbeats",
    "repeated_call",
    "cycle",
    "step_budget",
    "tool_outage",
    "quality_decay",
    "model_swap",
    "token_burn",
]
RUN_INCIDENTS = frozenset(
    {"zombie_tool", "zombie_heartbeats", "repeated_call", "cycle", "step_budget"}
)
# The finding kind each incident should raise (a model swap with a quality drop: both).
EXPECTED_KIND: dict[str, str] = {
    "zombie_tool": "zombie_run",
    "zombie_heartbeats": "zombie_run",
    "repeated_call": "runaway_loop",
    "cycle": "runaway_loop",
    "step_budget": "runaway_loop",
    "tool_outage": "tool_failure_spike",
    "quality_decay": "quality_drift",
    "model_swap": "change_point",
    "token_burn": "cost_spike",
}


@dataclass(frozen=True, slots=True)
class Incident:
    """A run that goes wrong, started `at_s` seconds into the traffic.

    - zombie_tool: a tool call starts (its pending marker is sent) and hangs;
    - zombie_heartbeats: an LLM answer stops streaming mid-way, so the loop's
      heartbeats stop (for an agent without pending markers);
    - repeated_call: the same tool with the same arguments, `repeats` times;
    - cycle: A→B→A→B… with the same arguments, `repeats` times round;
    - step_budget: a loop of `repeats` turns of distinct calls (2 steps per turn).

    A zombie's stuck step ends (as a timeout) after `hang_s` (None: never, and the run
    never ends either). Then the agent goes on for at least two export intervals before
    it finishes — or, with `give_up`, the run ends at once.

    Conditions, from `at_s` on, for the healthy runs:

    - tool_outage: `tool_name` fails `failure_rate` of its calls (for every agent
      calling it) for `duration_s`, then recovers;
    - quality_decay: the agent's evaluation scores fall linearly by `drop` over
      `duration_s`, stay down for `hold_s`, then are back (a fix is rolled out);
    - model_swap: the agent's LLM calls use `model` (and `provider`, "": the same
      provider) for good; with `drop` > 0 its scores fall by `drop` at once, for `hold_s`;
    - token_burn: for `duration_s`, the agent's LLM calls send `factor` x their usual
      input tokens (a prompt regression: whole documents or the full history re-sent
      on every call) — the same model, calls and tools, so only their cost changes.
    """

    kind: IncidentKind
    at_s: float
    agent_name: str
    hang_s: float | None = None
    give_up: bool = False
    repeats: int = 6
    tool_name: str = ""
    duration_s: float = 3600.0
    failure_rate: float = 0.5
    drop: float = 0.0
    hold_s: float = 3600.0
    model: str = ""
    provider: str = ""
    factor: float = 1.0


@dataclass(slots=True)
class InjectedRun:
    """What the generator did for one incident: the facts a test checks findings against."""

    incident: Incident
    trace_id: str = ""
    run_id: str = ""
    service_name: str = ""
    instance_id: str = ""
    started_ns: int = 0
    ended_ns: int = 0  # the agent span's end (0: never)
    stalled_at_ns: int = 0  # zombies: the run's last activity before the hang
    stuck_span_id: str = ""  # zombies: the step that hangs
    resumed_at_ns: int = 0  # zombies: when the stuck step ended (0: never)
    detectable_at_ns: int = 0  # loops: the end of the step that makes it a loop


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """What one injected incident should raise: the finding kind, about whom, and when.

    A finding may name the agent by its own name or, for steps that arrived before the
    agent span, by its service's (ingest's fallback): `agent_names` holds both, and ""
    for a tool's finding across agents. `trace_id` is set for run incidents. The
    incident lasts from `start_ns` to `end_ns` (0: never ends); it can be detected from
    `onset_ns` on (a zombie's last activity, a loop's decisive step, an outage's or a
    decay's start, a swap).
    """

    incident: Incident
    kind: str
    agent_names: tuple[str, ...]
    start_ns: int
    end_ns: int
    onset_ns: int
    tool_name: str = ""
    trace_id: str = ""
    model: str = ""  # model_swap: the new model ("provider/model")


# -- output --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Batch:
    """One export request: the spans a process's batch processor sent at one flush."""

    delivered_ns: int
    spans: list[AgentSpan]


@dataclass(slots=True)
class Traffic:
    start_ns: int
    end_ns: int  # replay until here (past the last delivery)
    batches: list[Batch]
    runs_by_agent: dict[str, int]
    injected: list[InjectedRun]  # the run incidents
    max_steps_per_run: int  # over the healthy runs
    max_tokens_per_run: int
    slow_llm_calls: int  # healthy LLM calls of 20 s or more
    truth: list[GroundTruth] = field(default_factory=list)  # every incident's

    @property
    def runs(self) -> int:
        return sum(self.runs_by_agent.values())

    @property
    def spans(self) -> int:
        return sum(len(batch.spans) for batch in self.batches)


# -- simulation ----------------------------------------------------------------------


@dataclass(slots=True)
class _Raw:
    """A span as its process exports it, before ingest attributes it."""

    seq: int
    process: int
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    own_agent: str = ""  # gen_ai.agent.name on the span itself
    own_run: str = ""  # gen_ai.conversation.id on the span itself
    operation: str = ""
    tool_name: str = ""
    tool_args_hash: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    is_error: bool = False
    error_type: str = ""
    marker: str = ""
    pending_span_id: str = ""
    pending_name: str = ""
    model: str = ""
    provider: str = ""
    attributes: dict[str, str] = field(default_factory=lambda: _NO_ATTRIBUTES)
    evaluations: tuple[Evaluation, ...] = ()


@dataclass(slots=True)
class _Open:
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    operation: str = ""
    tool_name: str = ""
    own_agent: str = ""
    own_run: str = ""


@dataclass(frozen=True, slots=True)
class _Process:
    service_name: str
    instance_id: str
    flush_phase_ns: int


def _secs(seconds: float) -> int:
    return round(seconds * NS)


def args_hash(arguments: dict[str, Any]) -> str:
    text = json.dumps(arguments, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class _Conditions:
    """What the condition incidents change for the healthy runs, at a point in event time."""

    def __init__(self, incidents: Sequence[Incident]) -> None:
        # tool -> [(from, to, failure rate)]
        self.outages: dict[str, list[tuple[int, int, float]]] = {}
        # agent -> [(at, model, provider)], by time
        self.swaps: dict[str, list[tuple[int, str, str]]] = {}
        # agent -> [(from, fully down at, back at, drop)]
        self.drops: dict[str, list[tuple[int, int, int, float]]] = {}
        # agent -> [(from, to, input token factor)]
        self.burns: dict[str, list[tuple[int, int, float]]] = {}
        for incident in incidents:
            at = START_NS + _secs(incident.at_s)
            if incident.kind == "tool_outage":
                end = at + _secs(incident.duration_s)
                self.outages.setdefault(incident.tool_name, []).append(
                    (at, end, incident.failure_rate)
                )
            elif incident.kind == "quality_decay":
                if incident.drop <= 0:
                    raise ValueError("a quality_decay needs a drop > 0")
                down = at + _secs(incident.duration_s)
                self.drops.setdefault(incident.agent_name, []).append(
                    (at, down, down + _secs(incident.hold_s), incident.drop)
                )
            elif incident.kind == "token_burn":
                if incident.factor <= 1:
                    raise ValueError("a token_burn needs a factor > 1")
                end = at + _secs(incident.duration_s)
                self.burns.setdefault(incident.agent_name, []).append((at, end, incident.factor))
            elif incident.kind == "model_swap":
                self.swaps.setdefault(incident.agent_name, []).append(
                    (at, incident.model, incident.provider)
                )
                if incident.drop > 0:
                    self.drops.setdefault(incident.agent_name, []).append(
                        (at, at, at + _secs(incident.hold_s), incident.drop)
                    )
        for swaps in self.swaps.values():
            swaps.sort()

    def failure_rate(self, tool: Tool, at_ns: int) -> float:
        for start, end, rate in self.outages.get(tool.name, ()):
            if start <= at_ns < end:
                return rate
        return tool.error_rate

    def token_factor(self, agent: AgentProfile, at_ns: int) -> float:
        """What the agent's prompts are multiplied by at `at_ns` (1: as usual)."""
        for start, end, factor in self.burns.get(agent.agent_name, ()):
            if start <= at_ns < end:
                return factor
        return 1.0

    def model(self, agent: AgentProfile, at_ns: int) -> tuple[str, str]:
        model, provider = agent.model, provider_of(agent)
        for at, new_model, new_provider in self.swaps.get(agent.agent_name, ()):
            if at > at_ns:
                break
            model = new_model or f"{model}-next"
            provider = new_provider or provider
        return model, provider

    def quality(self, agent: AgentProfile, at_ns: int) -> float:
        """The agent's mean evaluation score at `at_ns`."""
        mean = agent.quality
        for start, down, back, drop in self.drops.get(agent.agent_name, ()):
            if start <= at_ns < back:
                mean -= drop if at_ns >= down else drop * (at_ns - start) / (down - start)
        return mean


class _RunSim:
    """One run of one agent in one process: appends the spans its process exports."""

    def __init__(
        self,
        out: list[_Raw],
        seq: itertools.count[int],
        agent: AgentProfile,
        process: int,
        rng: random.Random,
        start_ns: int,
        conditions: _Conditions | None = None,
    ) -> None:
        self.out = out
        self.conditions = conditions or _Conditions(())
        self.seq = seq
        self.agent = agent
        self.process = process
        self.rng = rng
        self.t = start_ns
        self.trace_id = f"{rng.getrandbits(128):032x}"
        self.run_id = f"conv-{rng.getrandbits(48):012x}" if agent.conversation_ids else ""
        self.last_heartbeat_ns: int | None = None
        self.steps = 0
        self.tokens = 0
        self.slow_llm_calls = 0
        self.context = agent.base_context
        self.calls: dict[str, int] = {}  # tool + args hash -> calls, in this run
        self.pools: dict[str, list[str]] = {}
        self.last_emit_ns = start_ns

    # -- span primitives --------------------------------------------------------------

    def _new_id(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def _emit(self, raw: _Raw) -> _Raw:
        self.out.append(raw)
        self.last_emit_ns = max(self.last_emit_ns, raw.end_ns)
        return raw

    def begin(
        self,
        name: str,
        parent: str,
        start_ns: int,
        *,
        operation: str = "",
        tool_name: str = "",
        own_agent: str = "",
        own_run: str = "",
    ) -> _Open:
        span = _Open(
            self._new_id(), parent, name, start_ns, operation, tool_name, own_agent, own_run
        )
        if self.agent.pending_markers and operation:
            self._emit(
                _Raw(
                    next(self.seq),
                    self.process,
                    self.trace_id,
                    self._new_id(),
                    parent,
                    "agentwatch.pending",
                    start_ns,
                    start_ns,
                    own_agent=own_agent,
                    own_run=own_run,
                    operation=operation,
                    tool_name=tool_name,
                    marker="pending",
                    pending_span_id=span.span_id,
                    pending_name=name,
                )
            )
        return span

    def end(
        self,
        span: _Open,
        end_ns: int,
        *,
        tool_args_hash: str = "",
        input_tokens: int = 0,
        output_tokens: int = 0,
        error_type: str = "",
        model: str = "",
        provider: str = "",
        attributes: dict[str, str] | None = None,
        evaluations: tuple[Evaluation, ...] = (),
    ) -> _Raw:
        return self._emit(
            _Raw(
                next(self.seq),
                self.process,
                self.trace_id,
                span.span_id,
                span.parent_span_id,
                span.name,
                span.start_ns,
                max(end_ns, span.start_ns),
                own_agent=span.own_agent,
                own_run=span.own_run,
                operation=span.operation,
                tool_name=span.tool_name,
                tool_args_hash=tool_args_hash,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                is_error=bool(error_type),
                error_type=error_type,
                model=model,
                provider=provider,
                attributes=attributes or _NO_ATTRIBUTES,
                evaluations=evaluations,
            )
        )

    def heartbeat(self, at_ns: int, parent: str) -> None:
        """agentwatch_sdk.heartbeat() called at `at_ns` in `parent`: sent unless rate-limited."""
        if not self.agent.heartbeats:
            return
        last = self.last_heartbeat_ns
        if last is not None and at_ns - last < HEARTBEAT_INTERVAL_NS:
            return
        self.last_heartbeat_ns = at_ns
        self._emit(
            _Raw(
                next(self.seq),
                self.process,
                self.trace_id,
                self._new_id(),
                parent,
                "agentwatch.heartbeat",
                at_ns,
                at_ns,
                marker="heartbeat",
            )
        )

    def stream(self, llm_span: str, first_chunk_ns: int, last_chunk_ns: int) -> None:
        """An answer streaming in: the agent calls heartbeat() on every chunk."""
        at = first_chunk_ns
        while at < last_chunk_ns:
            self.heartbeat(at, llm_span)
            last = self.last_heartbeat_ns or at
            jitter = _secs(self.rng.uniform(0.0, 0.15))
            at = max(at + 50 * MS, last + HEARTBEAT_INTERVAL_NS + jitter)

    # -- durations and arguments -------------------------------------------------------

    def _lognormal(self, median_s: float, sigma: float) -> float:
        return median_s * math.exp(sigma * self.rng.gauss(0.0, 1.0))

    def gap(self) -> int:
        """The agent's own work between two steps (parsing, bookkeeping)."""
        return _secs(self.rng.uniform(0.005, 0.08))

    def arguments(self, tool: Tool) -> dict[str, Any]:
        if tool.pool:
            pool = self.pools.setdefault(
                tool.name, [f"{self.rng.getrandbits(40):010x}" for _ in range(tool.pool)]
            )
            value = self.rng.choice(pool)
        else:
            value = f"{tool.param}-{self.rng.getrandbits(48):012x}"
        arguments: dict[str, Any] = {tool.param: value}
        # A healthy agent may look the same thing up twice (e.g. after an update), not
        # more: past that it asks for more (the next page) — or it is looping.
        page = 1
        while self.calls.get(f"{tool.name}\x00{args_hash(arguments)}", 0) >= 2:
            page += 1
            arguments = {tool.param: value, "page": page}
        return arguments

    # -- steps -------------------------------------------------------------------------

    def chat(
        self,
        parent: str,
        start_ns: int,
        *,
        slow: bool | None = None,
        small: bool = False,
    ) -> int:
        """An LLM call from `start_ns` (streamed; `small`: a short prompt); returns its end."""
        agent = self.agent
        if slow is None:
            slow = self.rng.random() < agent.slow_llm_share
        if slow:
            duration_s = self.rng.uniform(20.0, 90.0)
            first_token_s = self.rng.uniform(1.0, min(25.0, duration_s / 2))
            self.slow_llm_calls += 1
        else:
            duration_s = min(self._lognormal(agent.llm_median_s, 0.6), 19.0)
            first_token_s = duration_s * self.rng.uniform(0.1, 0.4)
        model, provider = self.conditions.model(agent, start_ns)
        span = self.begin(f"chat {model}", parent, start_ns, operation="chat")
        end_ns = start_ns + _secs(duration_s)
        self.stream(span.span_id, start_ns + _secs(first_token_s), end_ns)
        if small:
            input_tokens = self.rng.randint(900, 1_800)
            output_tokens = self.rng.randint(20, 120)
        else:
            input_tokens = self.context + self.rng.randint(0, 300)
            output_tokens = self.rng.randint(40, 900 if slow else 500)
            self.context += output_tokens
            # A token burn bloats what is sent, not the run's course (the same draws; the
            # agent's spend guard, GUARD_TOKENS, may end a long run sooner).
            input_tokens = round(input_tokens * self.conditions.token_factor(agent, start_ns))
        self.end(
            span,
            end_ns,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            model=model,
            provider=provider,
        )
        self.steps += 1
        self.tokens += input_tokens + output_tokens
        return end_ns

    def tool_call(
        self,
        parent: str,
        start_ns: int,
        tool: Tool,
        arguments: dict[str, Any],
        *,
        attempt: int = 0,
        duration_s: float | None = None,
        error: str | None = None,
    ) -> int:
        """A tool call (retried with corrected arguments if it fails); returns its end."""
        span = self.begin(
            f"execute_tool {tool.name}",
            parent,
            start_ns,
            operation="execute_tool",
            tool_name=tool.name,
        )
        if duration_s is None:
            duration_s = self._lognormal(tool.median_s, 1.0)
        soft = False  # failed, but said so inside a successful result
        if error is None:
            error = ""
            if duration_s >= tool.timeout_s:
                duration_s, error = tool.timeout_s, "TimeoutError"
            else:
                rate = self.conditions.failure_rate(tool, start_ns)
                draw = self.rng.random()
                if draw < rate:
                    error = self.rng.choice(("ToolError", "ValidationError", "HTTPError"))
                    soft = draw < rate * tool.soft_failures
        end_ns = start_ns + _secs(duration_s)
        if tool.http:
            client = self.begin("POST", span.span_id, start_ns + MS)
            self.end(client, end_ns - MS, error_type="HTTPError" if error and not soft else "")
        signature = args_hash(arguments)
        attributes = None
        if tool.soft_failures and (soft or not error):  # a result came back: its verdict
            attributes = {SUCCESS_ATTRIBUTE: "false" if soft else "true"}
        self.end(
            span,
            end_ns,
            tool_args_hash=signature,
            error_type="" if soft else error,
            attributes=attributes,
        )
        self.steps += 1
        key = f"{tool.name}\x00{signature}"
        self.calls[key] = self.calls.get(key, 0) + 1
        self.context += self.rng.randint(150, 2_500)
        if error and attempt < 2 and self.rng.random() < 0.7:
            # A legitimate retry: the same tool, after a backoff, with corrected arguments.
            retry_at = end_ns + _secs(self.rng.uniform(0.3, 3.0))
            return self.tool_call(parent, retry_at, tool, self.arguments(tool), attempt=attempt + 1)
        return end_ns

    def tools(self, parent: str, start_ns: int) -> int:
        agent = self.agent
        count = 1
        if self.rng.random() < agent.parallel_tools_share:
            count = self.rng.randint(2, 3)
        chosen = self.rng.sample(agent.tools, min(count, len(agent.tools)))
        ends = [
            self.tool_call(parent, start_ns + i * MS, tool, self.arguments(tool))
            for i, tool in enumerate(chosen)
        ]
        return max(ends)

    def turn(self, root: _Open, *, final: bool) -> None:
        """One turn of the agent's loop: think, then act (unless it is done)."""
        self.heartbeat(self.t, root.span_id)
        self.t = self.chat(root.span_id, self.t) + self.gap()
        if self.context > self.agent.max_context:
            self.context = self.agent.base_context + self.rng.randint(500, 1_500)  # compacted
        if not final:
            self.t = self.tools(root.span_id, self.t) + self.gap()

    # -- runs --------------------------------------------------------------------------

    def open_run(self) -> tuple[_Open | None, _Open]:
        agent = self.agent
        outer: _Open | None = None
        if agent.entry == "http":
            outer = self.begin("POST /v1/agent", "", self.t)
        elif agent.entry == "queue":
            outer = self.begin("research-jobs process", "", self.t)
        self.t += _secs(self.rng.uniform(0.001, 0.02))
        parent = outer.span_id if outer else ""
        if agent.entry == "remote":
            parent = self._new_id()  # a caller's span, exported elsewhere
        root = self.begin(
            f"invoke_agent {agent.agent_name}",
            parent,
            self.t,
            operation="invoke_agent",
            own_agent=agent.agent_name,
            own_run=self.run_id,
        )
        self.t += _secs(self.rng.uniform(0.002, 0.05))
        return outer, root

    def evaluate(self, at_ns: int) -> tuple[Evaluation, ...]:
        """The agent's evaluation of the run that ends at `at_ns` (none if not evaluated)."""
        agent = self.agent
        if not agent.evaluation:
            return ()
        draw = self.rng.random()
        if draw < agent.bad_answer_share:
            score = self.rng.uniform(0.1, 0.5)
        else:
            score = self.rng.gauss(self.conditions.quality(agent, at_ns), agent.quality_noise)
        return (Evaluation(at_ns, agent.evaluation, round(min(1.0, max(0.0, score)), 4), ""),)

    def close_run(self, outer: _Open | None, root: _Open) -> int:
        self.end(root, self.t, evaluations=self.evaluate(self.t))
        ended = self.t
        if outer is not None:
            self.end(outer, self.t + _secs(self.rng.uniform(0.001, 0.01)))
        return ended

    def healthy(self) -> None:
        agent = self.agent
        low, high = agent.long_turns if self.rng.random() < agent.long_run_share else agent.turns
        turns = self.rng.randint(low, high)
        outer, root = self.open_run()
        for number in range(turns):
            final = (
                number == turns - 1
                or self.steps >= GUARD_STEPS - 4
                or self.tokens >= GUARD_TOKENS - 4 * agent.max_context
            )
            self.turn(root, final=final)
            if final:
                break
        self.close_run(outer, root)


def _diurnal(t_s: float) -> float:
    """Traffic relative to the daily peak (15:00): a quarter of it at 03:00."""
    phase = 2 * math.pi * (t_s / 3600.0 - 3.0) / 24.0
    return 0.25 + 0.75 * (0.5 - 0.5 * math.cos(phase))


def _processes(fleet: Sequence[AgentProfile], rng: random.Random) -> list[_Process]:
    processes = []
    for agent in fleet:
        deployment = f"{rng.getrandbits(32):08x}"[:6]
        for k in range(agent.instances):
            processes.append(
                _Process(
                    agent.service_name,
                    f"{agent.service_name}-{deployment}-{k}",
                    rng.randrange(EXPORT_INTERVAL_NS),
                )
            )
    return processes


def generate(
    hours: float,
    *,
    seed: int,
    fleet: Sequence[AgentProfile] = FLEET,
    incidents: Iterable[Incident] = (),
) -> Traffic:
    """`hours` of the fleet's traffic from START_NS, plus `incidents`, in delivery order."""
    incidents = list(incidents)
    conditions = _Conditions(incidents)
    horizon_ns = _secs(hours * 3600)
    setup = random.Random(f"{seed}:processes")
    processes = _processes(fleet, setup)
    first_process: dict[str, int] = {}
    for index, process in enumerate(processes):
        first_process.setdefault(process.service_name, index)
    out: list[_Raw] = []
    seq = itertools.count()
    runs_by_agent: dict[str, int] = {}
    max_steps = max_tokens = slow_llm_calls = 0

    for agent in fleet:
        arrivals = random.Random(f"{seed}:arrivals:{agent.agent_name}")
        peak_per_s = agent.peak_runs_per_hour / 3600.0
        t_s = 0.0
        count = 0
        while True:
            t_s += arrivals.expovariate(peak_per_s)
            if t_s * NS >= horizon_ns:
                break
            if arrivals.random() >= _diurnal(t_s):
                continue  # thinning: fewer runs off-peak
            where = first_process[agent.service_name] + arrivals.randrange(agent.instances)
            sim = _RunSim(
                out,
                seq,
                agent,
                where,
                random.Random(f"{seed}:run:{agent.agent_name}:{count}"),
                START_NS + _secs(t_s),
                conditions,
            )
            sim.healthy()
            count += 1
            max_steps = max(max_steps, sim.steps)
            max_tokens = max(max_tokens, sim.tokens)
            slow_llm_calls += sim.slow_llm_calls
        runs_by_agent[agent.agent_name] = count

    # Health checks: traces without any agent span, from every process.
    for index, process in enumerate(processes):
        checks = random.Random(f"{seed}:health:{process.instance_id}")
        at = START_NS + checks.randrange(HEALTH_CHECK_INTERVAL_NS)
        while at < START_NS + horizon_ns:
            duration = checks.randrange(MS, 4 * MS)
            out.append(
                _Raw(
                    next(seq),
                    index,
                    f"{checks.getrandbits(128):032x}",
                    f"{checks.getrandbits(64):016x}",
                    "",
                    "GET /healthz",
                    at,
                    at + duration,
                )
            )
            at += HEALTH_CHECK_INTERVAL_NS

    injected = []
    truth = []
    for number, incident in enumerate(incidents):
        agent = profile(incident.agent_name, fleet)
        if incident.kind not in RUN_INCIDENTS:
            truth.extend(_condition_truth(incident, agent, fleet, conditions))
            continue
        where = first_process[agent.service_name]
        sim = _RunSim(
            out,
            seq,
            agent,
            where,
            random.Random(f"{seed}:incident:{number}:{incident.kind}"),
            START_NS + _secs(incident.at_s),
            conditions,
        )
        facts = InjectedRun(
            incident,
            trace_id=sim.trace_id,
            run_id=sim.run_id or sim.trace_id,
            service_name=agent.service_name,
            instance_id=processes[where].instance_id,
            started_ns=sim.t,
        )
        _INCIDENTS[incident.kind](sim, incident, facts)
        injected.append(facts)
        truth.append(_run_truth(facts, agent))

    batches = _deliver(out, processes, seed)
    last = batches[-1].delivered_ns if batches else START_NS
    return Traffic(
        start_ns=START_NS,
        end_ns=max(last, START_NS + horizon_ns) + 60 * NS,
        batches=batches,
        runs_by_agent=runs_by_agent,
        injected=injected,
        max_steps_per_run=max_steps,
        max_tokens_per_run=max_tokens,
        slow_llm_calls=slow_llm_calls,
        truth=truth,
    )


def _run_truth(facts: InjectedRun, agent: AgentProfile) -> GroundTruth:
    incident = facts.incident
    zombie = incident.kind.startswith("zombie")
    return GroundTruth(
        incident,
        EXPECTED_KIND[incident.kind],
        (agent.agent_name, agent.service_name),
        start_ns=facts.stalled_at_ns if zombie else facts.started_ns,
        end_ns=facts.resumed_at_ns if zombie else facts.ended_ns,
        onset_ns=facts.stalled_at_ns if zombie else facts.detectable_at_ns,
        trace_id=facts.trace_id,
    )


def _condition_truth(
    incident: Incident,
    agent: AgentProfile,
    fleet: Sequence[AgentProfile],
    conditions: _Conditions,
) -> list[GroundTruth]:
    at = START_NS + _secs(incident.at_s)
    names = (agent.agent_name, agent.service_name)
    if incident.kind == "tool_outage":
        callers = [a for a in fleet if any(t.name == incident.tool_name for t in a.tools)]
        if not callers:
            raise ValueError(f"no agent calls {incident.tool_name}")
        return [
            GroundTruth(
                incident,
                "tool_failure_spike",
                (*(n for a in callers for n in (a.agent_name, a.service_name)), ""),
                start_ns=at,
                end_ns=at + _secs(incident.duration_s),
                onset_ns=at,
                tool_name=incident.tool_name,
            )
        ]
    if incident.kind == "quality_decay":
        if not agent.evaluation:
            raise ValueError(f"{agent.agent_name}'s runs are not evaluated")
        end = at + _secs(incident.duration_s + incident.hold_s)
        return [GroundTruth(incident, "quality_drift", names, at, end, at)]
    if incident.kind == "token_burn":
        end = at + _secs(incident.duration_s)
        return [GroundTruth(incident, "cost_spike", names, at, end, at)]
    model, provider = conditions.model(agent, at)
    found = [GroundTruth(incident, "change_point", names, at, at, at, model=f"{provider}/{model}")]
    if incident.drop > 0:
        if not agent.evaluation:
            raise ValueError(f"{agent.agent_name}'s runs are not evaluated")
        end = at + _secs(incident.hold_s)
        found.append(GroundTruth(incident, "quality_drift", names, at, end, at))
    return found


# -- incident runs -------------------------------------------------------------------


def _zombie_tool(sim: _RunSim, incident: Incident, facts: InjectedRun) -> None:
    """Two normal turns, then a tool call that hangs (its pending marker was sent)."""
    outer, root = sim.open_run()
    for _ in range(2):
        sim.turn(root, final=False)
    sim.heartbeat(sim.t, root.span_id)
    sim.t = sim.chat(root.span_id, sim.t, slow=False) + sim.gap()
    tool = sim.agent.tools[0]
    stuck = sim.begin(
        f"execute_tool {tool.name}",
        root.span_id,
        sim.t,
        operation="execute_tool",
        tool_name=tool.name,
    )
    facts.stuck_span_id = stuck.span_id
    facts.stalled_at_ns = sim.last_emit_ns
    if incident.hang_s is None:
        return
    end = sim.t + _secs(incident.hang_s)
    signature = args_hash(sim.arguments(tool))
    sim.end(stuck, end, tool_args_hash=signature, error_type="TimeoutError")
    sim.steps += 1
    _after_hang(sim, incident, facts, outer, root, end)


def _zombie_heartbeats(sim: _RunSim, incident: Incident, facts: InjectedRun) -> None:
    """Two normal turns, then an LLM answer that stops streaming: heartbeats stop."""
    outer, root = sim.open_run()
    for _ in range(2):
        sim.turn(root, final=False)
    sim.heartbeat(sim.t, root.span_id)
    model, provider = sim.conditions.model(sim.agent, sim.t)
    stuck = sim.begin(f"chat {model}", root.span_id, sim.t, operation="chat")
    sim.stream(stuck.span_id, sim.t + _secs(1.5), sim.t + _secs(17.0))  # then it stalls
    facts.stuck_span_id = stuck.span_id
    facts.stalled_at_ns = sim.last_emit_ns
    if incident.hang_s is None:
        return
    end = facts.stalled_at_ns + _secs(incident.hang_s)
    sim.end(
        stuck,
        end,
        input_tokens=sim.context,
        error_type="ReadTimeout",
        model=model,
        provider=provider,
    )
    sim.steps += 1
    _after_hang(sim, incident, facts, outer, root, end)


def _after_hang(
    sim: _RunSim,
    incident: Incident,
    facts: InjectedRun,
    outer: _Open | None,
    root: _Open,
    resumed_ns: int,
) -> None:
    """The stuck step ended at `resumed_ns`: give up, or go on for a while, then finish."""
    facts.resumed_at_ns = resumed_ns
    sim.t = resumed_ns + sim.gap()
    if not incident.give_up:
        while sim.t - resumed_ns < 2 * EXPORT_INTERVAL_NS:
            sim.turn(root, final=False)
        sim.turn(root, final=True)
    facts.ended_ns = sim.close_run(outer, root)


def _repeated_call(sim: _RunSim, incident: Incident, facts: InjectedRun) -> None:
    """Two normal turns, then the same tool with the same arguments, turn after turn."""
    outer, root = sim.open_run()
    for _ in range(2):
        sim.turn(root, final=False)
    tool = sim.agent.tools[1]
    arguments = {tool.param: "status of my refund for order 4411?"}
    ends = []
    for _ in range(incident.repeats):
        sim.heartbeat(sim.t, root.span_id)
        sim.t = sim.chat(root.span_id, sim.t, slow=False) + sim.gap()
        duration = sim._lognormal(tool.median_s, 0.3)
        sim.t = sim.tool_call(root.span_id, sim.t, tool, arguments, duration_s=duration, error="")
        ends.append(sim.t)
        sim.t += sim.gap()
    facts.detectable_at_ns = ends[2]
    sim.turn(root, final=True)
    facts.ended_ns = sim.close_run(outer, root)


def _cycle(sim: _RunSim, incident: Incident, facts: InjectedRun) -> None:
    """Two normal turns, then A→B→A→B… with the same arguments each time round."""
    outer, root = sim.open_run()
    for _ in range(2):
        sim.turn(root, final=False)
    first, second = sim.agent.tools[0], sim.agent.tools[1]
    calls = [
        (first, {first.param: "agent loop detection survey"}),
        (second, {second.param: "https://example.org/survey.pdf"}),
    ]
    ends = []
    for _ in range(incident.repeats):
        for tool, arguments in calls:
            sim.t = sim.chat(root.span_id, sim.t, slow=False) + sim.gap()
            duration = sim._lognormal(tool.median_s, 0.3)
            sim.t = sim.tool_call(
                root.span_id, sim.t, tool, arguments, duration_s=duration, error=""
            )
            ends.append(sim.t)
            sim.t += sim.gap()
    facts.detectable_at_ns = ends[4]  # A B A B A: A's third call
    sim.turn(root, final=True)
    facts.ended_ns = sim.close_run(outer, root)


def _step_budget(sim: _RunSim, incident: Incident, facts: InjectedRun) -> None:
    """A loop of distinct calls that does not stop: `repeats` turns of 2 steps."""
    outer, root = sim.open_run()
    step_ends = []
    for _ in range(incident.repeats):
        sim.heartbeat(sim.t, root.span_id)
        sim.t = sim.chat(root.span_id, sim.t, small=True)
        step_ends.append(sim.t)
        sim.t += sim.gap()
        tool = sim.rng.choice(sim.agent.tools)
        duration = min(sim._lognormal(tool.median_s, 0.8), tool.timeout_s / 2)
        sim.t = sim.tool_call(
            root.span_id, sim.t, tool, sim.arguments(tool), duration_s=duration, error=""
        )
        step_ends.append(sim.t)
        sim.t += sim.gap()
    step_ends.sort()
    facts.detectable_at_ns = step_ends[500]  # the 501st step
    sim.turn(root, final=True)
    facts.ended_ns = sim.close_run(outer, root)


_INCIDENTS: dict[str, Callable[[_RunSim, Incident, InjectedRun], None]] = {
    "zombie_tool": _zombie_tool,
    "zombie_heartbeats": _zombie_heartbeats,
    "repeated_call": _repeated_call,
    "cycle": _cycle,
    "step_budget": _step_budget,
}


# -- delivery ------------------------------------------------------------------------


def _deliver(out: list[_Raw], processes: list[_Process], seed: int) -> list[Batch]:
    """Group spans into export requests by process and flush; attribute them as ingest does."""
    requests: dict[tuple[int, int], list[_Raw]] = {}
    for raw in out:
        phase = processes[raw.process].flush_phase_ns
        flush = (raw.end_ns - phase) // EXPORT_INTERVAL_NS + 1  # the next flush after the end
        requests.setdefault((raw.process, flush), []).append(raw)
    timed = []
    for (process, flush), raws in sorted(requests.items()):
        # Export and receive: a function of the request only, so that added runs (the
        # incidents) leave every other request's delivery time as it was.
        digest = hashlib.blake2b(f"{seed}:{process}:{flush}".encode(), digest_size=8).digest()
        latency = 15 * MS + int.from_bytes(digest, "big") % (385 * MS)
        delivered = processes[process].flush_phase_ns + flush * EXPORT_INTERVAL_NS + latency
        raws.sort(key=lambda raw: (raw.end_ns, raw.seq))  # the processor's queue order
        timed.append((delivered, process, raws))
    timed.sort(key=lambda item: (item[0], item[1]))
    resolver = EnclosingResolver()
    return [_batch(delivered, processes[p], raws, resolver) for delivered, p, raws in timed]


def _batch(
    delivered_ns: int, process: _Process, raws: list[_Raw], resolver: EnclosingResolver
) -> Batch:
    links = [
        SpanLink(
            bytes.fromhex(raw.trace_id),
            bytes.fromhex(raw.span_id),
            bytes.fromhex(raw.parent_span_id),
            raw.own_agent,
            raw.own_run,
        )
        for raw in raws
    ]
    announced = [
        announced
        for link, raw in zip(links, raws, strict=True)
        if raw.pending_span_id
        for announced in announced_link(link, raw.pending_span_id)
    ]
    attributions, _ = resolver.add(links + announced)
    spans = [
        AgentSpan(
            tenant=TENANT,
            service_name=process.service_name,
            service_instance_id=process.instance_id,
            trace_id=raw.trace_id,
            span_id=raw.span_id,
            parent_span_id=raw.parent_span_id,
            name=raw.name,
            start_ns=raw.start_ns,
            end_ns=raw.end_ns,
            agent_name=raw.own_agent or agent or process.service_name,
            run_id=raw.own_run or run or raw.trace_id,
            operation=raw.operation,
            tool_name=raw.tool_name,
            tool_args_hash=raw.tool_args_hash,
            input_tokens=raw.input_tokens,
            output_tokens=raw.output_tokens,
            is_error=raw.is_error,
            error_type=raw.error_type,
            marker=raw.marker,
            pending_span_id=raw.pending_span_id,
            pending_name=raw.pending_name,
            model=raw.model,
            provider=raw.provider,
            attributes=raw.attributes,
            evaluations=raw.evaluations,
        )
        for raw, (agent, run) in zip(raws, attributions[: len(raws)], strict=True)
    ]
    return Batch(delivered_ns, spans)


# -- replay --------------------------------------------------------------------------


@dataclass(slots=True)
class Replay:
    versions: list[Finding] = field(default_factory=list)  # every version, in order
    # When each finding was first taken from the engine, on the replay's clock (a
    # request's delivery or a tick): when agentwatch would have shown it.
    seen_at: dict[str, int] = field(default_factory=dict)
    ticks: int = 0
    # zombie_run's idle threshold (s) of a watched agent at each tick of its window.
    thresholds: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    @property
    def findings(self) -> list[Finding]:
        """The latest version of each finding, in the order they were opened."""
        latest: dict[str, Finding] = {}
        for version in self.versions:
            latest[version.id] = version
        return sorted(latest.values(), key=lambda finding: finding.opened_at_ns)


def replay(
    traffic: Traffic,
    config: dict[str, Any] | None = None,
    *,
    tick_s: float = 1.0,
    watch: Sequence[tuple[str, int, int]] = (),
    tick_on_delivery: bool = True,
) -> Replay:
    """Feed every request to a `DetectorEngine` in delivery order, on event time.

    Each request is consumed and the engine ticked at its delivery time; between
    requests the engine is ticked every `tick_s` of event time. Without
    `tick_on_delivery`, the engine is ticked on the `tick_s` grid only, as `serve`'s
    ticker does (cheaper: requests arrive several times a second). For each (agent
    name, from, to) in `watch`, zombie_run's threshold for that agent is recorded at
    every tick in [from, to].
    """
    engine = DetectorEngine(DetectorConfig.from_dict(config))
    zombie = next(d for d in engine.detectors if isinstance(d, ZombieRunDetector))
    result = Replay()

    def take(now_ns: int) -> None:
        for version in engine.take_findings():
            result.versions.append(version)
            result.seen_at.setdefault(version.id, now_ns)

    def tick(now_ns: int) -> None:
        engine.tick(now_ns)
        result.ticks += 1
        take(now_ns)
        for agent_name, from_ns, to_ns in watch:
            if from_ns <= now_ns <= to_ns:
                threshold_s = zombie.threshold_s(TENANT, agent_name)
                result.thresholds.setdefault(agent_name, []).append((now_ns, threshold_s))

    step = _secs(tick_s)
    next_tick = traffic.start_ns + step
    for batch in traffic.batches:
        while next_tick < batch.delivered_ns:
            tick(next_tick)
            next_tick += step
        engine.consume(batch.spans)
        if tick_on_delivery:
            tick(batch.delivered_ns)
        else:
            take(batch.delivered_ns)
    while next_tick <= traffic.end_ns:
        tick(next_tick)
        next_tick += step
    return result

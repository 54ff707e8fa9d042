"""The simulated fleet: agents at work, exporting with the real OpenTelemetry SDK.

Each agent is what a real one would be: its own `TracerProvider` (resource
`service.name`, `service.instance.id`), a `BatchSpanProcessor` with the OTLP/gRPC
exporter wrapped in agentwatch_sdk's `PendingSpanProcessor`, `heartbeat()` on every
turn of its loop and `tool_call()` around every tool. It serves several
conversations at once (one thread each). Its "work" — an LLM answering, a tool
responding — is a wait of a realistic length; everything it sends is real OTLP.

The timeline breaks agents through `Faults`, which the workers read at each step.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agentwatch_sdk import AgentPaused, PendingSpanProcessor, check_paused, heartbeat, tool_call
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind

from agentwatch._demo._agents import AgentSpec, ModelSpec, ToolSpec
from agentwatch._demo._router import ProviderRouter

log = logging.getLogger("agentwatch.demo")

Started = Callable[[str], None]  # told the trace id when an injected fault takes effect


@dataclass
class OneShot:
    """A fault for the next run (or tool call) that picks it up."""

    tool: str
    arguments: dict[str, Any]
    started: Started
    repeats: int = 1
    release: threading.Event = field(default_factory=threading.Event)


class Faults:
    """What the timeline has broken in one agent."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failure_rates: dict[str, float] = {}  # tool -> rate during an outage
        self.model: ModelSpec | None = None  # the model it was silently moved to
        self.swapped_at = 0.0
        self.hang: OneShot | None = None  # the next call of this tool never returns
        self.loop: OneShot | None = None  # the next run repeats this call
        self.extra: OneShot | None = None  # the next run also calls this tool
        self.hung: list[OneShot] = []

    def take(self, name: Literal["loop", "extra"]) -> OneShot | None:
        with self._lock:
            shot: OneShot | None = getattr(self, name)
            setattr(self, name, None)
            return shot

    def take_hang(self, tool: str) -> OneShot | None:
        with self._lock:
            if self.hang is None or self.hang.tool != tool:
                return None
            shot, self.hang = self.hang, None
            self.hung.append(shot)
            return shot

    def release_all(self) -> None:
        with self._lock:
            for shot in self.hung:
                shot.release.set()


class AgentStats:
    """Counters the terminal view reads: spans/s, runs, tool failures, scores."""

    WINDOW_S = 15.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.runs = 0
        self.spans = 0
        self.paused = False
        self._span_times: deque[float] = deque()
        self._tool_calls: deque[tuple[float, bool]] = deque()
        self._scores: deque[float] = deque(maxlen=20)

    def span_ended(self) -> None:
        with self._lock:
            self.spans += 1
            self._span_times.append(time.monotonic())

    def tool_called(self, failed: bool) -> None:
        with self._lock:
            self._tool_calls.append((time.monotonic(), failed))

    def run_ended(self, score: float) -> None:
        with self._lock:
            self.runs += 1
            self._scores.append(score)

    def rates(self) -> tuple[float, int, float | None, float | None]:
        """(spans/s over 5 s, tool calls and failure rate over 15 s, mean recent score)."""
        now = time.monotonic()
        with self._lock:
            while self._span_times and self._span_times[0] < now - 5:
                self._span_times.popleft()
            while self._tool_calls and self._tool_calls[0][0] < now - self.WINDOW_S:
                self._tool_calls.popleft()
            calls = len(self._tool_calls)
            failed = sum(1 for _, f in self._tool_calls if f)
            score = sum(self._scores) / len(self._scores) if self._scores else None
            return len(self._span_times) / 5, calls, failed / calls if calls else None, score


class _CountSpans(SpanProcessor):
    def __init__(self, stats: AgentStats) -> None:
        self._stats = stats

    def on_end(self, span: ReadableSpan) -> None:
        self._stats.span_ended()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Agent:
    """One simulated agent process."""

    def __init__(self, spec: AgentSpec, endpoint: str, seed: int, run_prefix: str) -> None:
        self.spec = spec
        self.faults = Faults()
        self.stats = AgentStats()
        resource = Resource.create(
            {
                "service.name": spec.service,
                "service.instance.id": f"{spec.service}-{seed % 1000:03d}",
                "service.version": "1.4.2",
                "agent.owner": spec.owner,
                "deployment.environment.name": "demo",
            }
        )
        self.provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
        batch = BatchSpanProcessor(exporter, schedule_delay_millis=200)
        self.provider.add_span_processor(PendingSpanProcessor(batch))
        self.provider.add_span_processor(_CountSpans(self.stats))
        self._tracer = self.provider.get_tracer("demo.agent_loop", "1.0")
        self._seed = seed
        self._run_prefix = run_prefix
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def model(self) -> ModelSpec:
        return self.faults.model or self.spec.model

    def start(self, router: ProviderRouter) -> None:
        for index in range(self.spec.workers):
            thread = threading.Thread(
                target=self._serve,
                args=(router, index),
                name=f"demo-{self.spec.name}-{index}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Finish the runs in flight (cut short), then flush everything to agentwatch."""
        self._stop.set()
        self.faults.release_all()
        for thread in self._threads:
            thread.join(10)
        self.provider.shutdown()

    def _serve(self, router: ProviderRouter, index: int) -> None:
        router.bind(self.provider)
        rng = random.Random(self._seed * 100 + index)
        number = 0
        while not self._stop.is_set():
            try:
                check_paused(self.spec.name)
                self.stats.paused = False
                self._run(rng, f"{self._run_prefix}-{index}-{number}")
            except AgentPaused:
                self.stats.paused = True
                self._stop.wait(1.0)
                continue
            except Exception:  # a bug in the simulation, not agentwatch: say so, go on
                log.exception("%s: simulated run failed", self.spec.name)
            number += 1
            self._stop.wait(rng.uniform(0.1, 0.4))  # until the next request comes in

    def _run(self, rng: random.Random, conversation: str) -> None:
        spec = self.spec
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": spec.name,
            "gen_ai.conversation.id": conversation,
            "enduser.id": f"user-{rng.randrange(500)}",
        }
        with self._tracer.start_as_current_span(
            f"invoke_agent {spec.name}", kind=SpanKind.INTERNAL, attributes=attributes
        ) as root:
            trace_id = format(root.get_span_context().trace_id, "032x")
            steps: list[tuple[str, dict[str, Any] | None]] = [(s, None) for s in spec.plan(rng)]
            loop, extra = self.faults.take("loop"), self.faults.take("extra")
            if loop is not None:  # the model keeps asking for the same call
                steps = [("llm", None)]
                steps += [(loop.tool, loop.arguments), ("llm", None)] * loop.repeats
                loop.started(trace_id)
            if extra is not None:
                steps.insert(1, (extra.tool, extra.arguments))
            for number, (step, arguments) in enumerate(steps):
                heartbeat(step=number)  # raises AgentPaused once an operator pauses it
                if step == "llm":
                    self._chat(rng)
                else:
                    if extra is not None and step == extra.tool:
                        extra.started(trace_id)
                    self._tool(rng, step, arguments, trace_id)
            self._evaluate(rng, root)

    def _chat(self, rng: random.Random) -> None:
        model = self.model
        with self._tracer.start_as_current_span(
            f"chat {model.request}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": model.provider,
                "gen_ai.request.model": model.request,
                "gen_ai.response.model": model.response,
                "gen_ai.usage.input_tokens": rng.randrange(400, 3000),
                "gen_ai.usage.output_tokens": rng.randrange(50, 600),
                "gen_ai.response.finish_reasons": ["stop"],
            },
        ):
            self._work(rng.uniform(0.15, 0.5))

    def _tool(
        self, rng: random.Random, name: str, arguments: dict[str, Any] | None, trace_id: str
    ) -> None:
        tool = self._tool_spec(name)
        outage = self.faults.failure_rates.get(name)
        rate = tool.failure_rate if outage is None else outage
        failed = arguments is None and rng.random() < rate  # injected calls succeed
        error = rng.choice(tool.error_types) if outage is None else "HTTP 503"
        hang = self.faults.take_hang(name)
        try:
            with tool_call(name, arguments=arguments or tool.arguments(rng)) as call:
                if hang is not None:  # the upstream never answers, and there is no timeout
                    hang.started(trace_id)
                    hang.release.wait()
                    failed = False
                else:
                    self._work(rng.uniform(*tool.latency_s))
                if failed and error == "TimeoutError":
                    raise TimeoutError(f"{name} timed out")
                if failed:
                    call.mark_failed(error, f"{name}: {error}")
        except TimeoutError:
            pass  # recorded on the span; the agent carries on without the result
        self.stats.tool_called(failed)

    def _tool_spec(self, name: str) -> ToolSpec:
        for tool in self.spec.tools:
            if tool.name == name:
                return tool
        return ToolSpec(name, 0.0, (0.05, 0.15), lambda rng: {})

    def _evaluate(self, rng: random.Random, root: Span) -> None:
        """An LLM judge's helpfulness score for the run's answer, as a span event."""
        mean = self.spec.score_mean
        if self.faults.model is not None:  # the cheaper model answers worse, soon
            decay = min(1.0, (time.monotonic() - self.faults.swapped_at) / 3.0)
            mean -= 0.3 * decay
        score = rng.uniform(0.1, 0.4) if rng.random() < 0.03 else rng.gauss(mean, 0.05)
        score = round(min(1.0, max(0.0, score)), 3)
        root.add_event(
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "helpfulness",
                "gen_ai.evaluation.score.value": score,
                "gen_ai.evaluation.score.label": "pass" if score >= 0.6 else "fail",
            },
        )
        self.stats.run_ended(score)

    def _work(self, seconds: float) -> None:
        """The agent's own work for a step (cut short when the demo stops)."""
        self._stop.wait(seconds)


class Fleet:
    """Every agent of the demo, started and stopped together."""

    def __init__(self, specs: tuple[AgentSpec, ...], endpoint: str, seed: int) -> None:
        prefix = f"conv{seed % 100:02d}{int(time.time()) % 10_000:04d}"
        self.agents = {
            spec.name: Agent(spec, endpoint, seed * 10 + i, f"{prefix}-{spec.name.split('-')[0]}")
            for i, spec in enumerate(specs)
        }
        self.router = ProviderRouter()

    def __getitem__(self, name: str) -> Agent:
        return self.agents[name]

    def start(self) -> None:
        for agent in self.agents.values():
            agent.start(self.router)

    def stop(self) -> None:
        for agent in self.agents.values():
            agent.faults.release_all()
        for agent in self.agents.values():
            agent.stop()

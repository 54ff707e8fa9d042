"""Shared pieces for the agentwatch_sdk tests: a real SDK pipeline into memory.

The package lives in `sdk/`, a separate distribution that may not be installed in
this environment, so `sdk/` goes first on `sys.path` here (when it is installed
editable, that is the same source).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"
if str(SDK_DIR) not in sys.path:
    sys.path.insert(0, str(SDK_DIR))

from agentwatch_sdk import (  # noqa: E402
    PendingSpanProcessor,
)

GENAI_AGENT = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.agent.name": "billing-agent",
    "gen_ai.conversation.id": "conv-7",
}


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pipeline:
    """A real TracerProvider exporting to memory, optionally through PendingSpanProcessor."""

    def __init__(self, *, pending: bool = False, all_spans: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.resource = Resource.create({"service.name": "sdk-test"})
        self.provider = TracerProvider(resource=self.resource)
        exporting: SpanProcessor = SimpleSpanProcessor(self.exporter)
        if pending:
            exporting = PendingSpanProcessor(exporting, all_spans=all_spans)
        self.provider.add_span_processor(exporting)
        self.tracer = self.provider.get_tracer("agent.app", "1.2.3")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = self.exporter.get_finished_spans()
        return [span for span in found if name is None or span.name == name]

    def one(self, name: str) -> ReadableSpan:
        matching = self.spans(name)
        assert len(matching) == 1, [span.name for span in self.spans()]
        return matching[0]


class RecordingProcessor(SpanProcessor):
    """A small sink that remembers what reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        self.calls.append(f"start {span.name}")

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(f"end {span.name}")

    def shutdown(self) -> None:
        self.calls.append("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.calls.append(f"flush {timeout_millis}")
        return True


def ctx(span: ReadableSpan) -> trace.SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


class BrokenProvider(TracerProvider):
    """A tracer provider whose tracers cannot be had: telemetry itself is down."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        raise RuntimeError("telemetry is down")

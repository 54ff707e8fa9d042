"""`PendingSpanProcessor`: announce a span when it starts, not only when it ends.

OTLP exports a span when it ends, so a step that hangs sends nothing. This processor
sends a zero-duration `agentwatch.pending` marker through the exporting processor the
moment a span starts; the backend matches it with the span's eventual end by
`agentwatch.pending.span_id`, and for a span that never ends it knows which step hung
and since when. The only module that imports the OpenTelemetry SDK.
"""

from __future__ import annotations

import logging

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.util.types import AttributeValue

from agentwatch_sdk._attributes import (
    AGENT_NAME,
    CONVERSATION_ID,
    MARKER,
    OPERATION,
    PENDING_NAME,
    PENDING_SPAN,
    PENDING_SPAN_ID,
    PENDING_START,
    TOOL_NAME,
)

_log = logging.getLogger(__name__)

# Attributes that make a span an agent step (GenAI, OpenInference, OpenLLMetry); the
# marker copies them so the backend attributes it to the same agent, run and step.
_AGENT_KIND_KEYS = (OPERATION, "openinference.span.kind", "traceloop.span.kind")
_COPIED_KEYS = (*_AGENT_KIND_KEYS, AGENT_NAME, TOOL_NAME, CONVERSATION_ID)


class PendingSpanProcessor(SpanProcessor):
    """Wraps the exporting processor; adds an `agentwatch.pending` marker at span start.

    `next_processor` is the processor that exports (e.g. a `BatchSpanProcessor`); every
    call is forwarded to it unchanged, and the markers go through its `on_end`.

    By default only agent spans get a marker: those with `gen_ai.operation.name`
    (or `openinference.span.kind` / `traceloop.span.kind`) set when they start — the
    steps a zombie-run finding names. Marking every span would double the export volume
    of an instrumented HTTP or database client for little gain; `all_spans=True` opts in.
    Marker spans (heartbeats) never get a marker.
    """

    def __init__(self, next_processor: SpanProcessor, *, all_spans: bool = False) -> None:
        self._next = next_processor
        self._all_spans = all_spans
        self._ids = RandomIdGenerator()

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        self._next.on_start(span, parent_context=parent_context)
        try:
            marker = self._marker(span)
        except Exception:  # telemetry must never break the agent
            _log.debug("agentwatch pending marker failed", exc_info=True)
            return
        if marker is not None:
            self._next.on_end(marker)

    def _on_ending(self, span: Span) -> None:
        on_ending = getattr(self._next, "_on_ending", None)  # opentelemetry-sdk >= 1.28
        if on_ending is not None:
            on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        self._next.on_end(span)

    def shutdown(self) -> None:
        self._next.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._next.force_flush(timeout_millis)

    def _marker(self, span: Span) -> ReadableSpan | None:
        attrs = span.attributes or {}
        if MARKER in attrs:
            return None
        if not self._all_spans and not any(key in attrs for key in _AGENT_KIND_KEYS):
            return None
        started = span.get_span_context()
        start_time = span.start_time
        if not started.is_valid or start_time is None:
            return None
        marker_attrs: dict[str, AttributeValue] = {
            key: attrs[key] for key in _COPIED_KEYS if key in attrs
        }
        marker_attrs.update(
            {
                MARKER: "pending",
                PENDING_SPAN_ID: trace.format_span_id(started.span_id),
                PENDING_NAME: span.name,
                PENDING_START: start_time,
            }
        )
        context = trace.SpanContext(
            trace_id=started.trace_id,
            span_id=self._ids.generate_span_id(),
            is_remote=False,
            trace_flags=started.trace_flags,
            trace_state=started.trace_state,
        )
        return ReadableSpan(
            name=PENDING_SPAN,
            context=context,
            parent=span.parent,
            resource=span.resource,
            attributes=marker_attrs,
            kind=trace.SpanKind.INTERNAL,
            start_time=start_time,
            end_time=start_time,
            instrumentation_scope=span.instrumentation_scope,
        )

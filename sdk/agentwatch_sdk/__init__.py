"""agentwatch_sdk — what an agent adds so agentwatch can tell a live run from a zombie.

OTLP exports a span only when it ends, so a hung step sends nothing. Three helpers fill
the gap, on top of `opentelemetry-api` alone:

- `heartbeat(**attributes)` inside the agent's loop: a rate-limited marker span in the
  current run (at most one per 5 s per trace and thread), returning whether it emitted.
- `PendingSpanProcessor(next_processor, all_spans=False)` (needs the extra
  `agentwatch-sdk[processor]`): wraps the exporting span processor and sends a
  marker when an agent span *starts*, so a step that never ends is still known.
- `tool_call(name, arguments=..., call_id=...)`: an `execute_tool` span per the GenAI
  conventions, as a context manager or a decorator (sync or async), with errors
  recorded; `mark_failed()` on the handle for failures reported inside a result.
  `current_tool_call()` returns the running call's handle (for decorated tools).
- `configure(tracer_provider=None, heartbeat_interval_s=5.0, max_argument_chars=4096)`.

Nothing here raises into the agent at run time: telemetry failures are logged at DEBUG
on the `agentwatch_sdk` loggers and swallowed (only `configure` rejects bad values).

Marker contract (read by the agentwatch backend)
================================================

Marker spans are zero-duration INTERNAL spans in the run's trace. They are signals,
not work: the backend must not count them as ordinary spans.

``agentwatch.heartbeat`` — emitted by `heartbeat()`; parent = the span current at the
call (same trace id); instrumentation scope ``agentwatch_sdk``.

  ==============================  ======  ===============================================
  attribute                       type    meaning
  ==============================  ======  ===============================================
  ``agentwatch.marker``           string  ``"heartbeat"``
  ``agentwatch.heartbeat.seq``    int     1, 2, 3, … per trace within this process
                                          (restarts at 1 if the process forgets the
                                          trace: it keeps the last 4096)
  ``gen_ai.agent.name``,          string  copied from the current span when it has
  ``gen_ai.conversation.id``              them (an SDK span), so the run's agent is
                                          known before its agent span ends
  (caller's keyword arguments)    any     copied as given
  ==============================  ======  ===============================================

``agentwatch.pending`` — emitted by `PendingSpanProcessor` when a span starts; same
trace id; parent = the started span's parent (none for a root); a new span id; start
= end = the started span's start time; resource and instrumentation scope = the
started span's.

  ==========================================  ======  ===================================
  attribute                                   type    meaning
  ==========================================  ======  ===================================
  ``agentwatch.marker``                       string  ``"pending"``
  ``agentwatch.pending.span_id``              string  16 lowercase hex: the started span
  ``agentwatch.pending.name``                 string  the started span's name at start
  ``agentwatch.pending.start_time_unix_nano`` int     the started span's start time
  ``gen_ai.operation.name``,                  string  copied from the started span when
  ``gen_ai.agent.name``,                              set at its start, so the marker is
  ``gen_ai.tool.name``,                               attributed to the same agent, run
  ``gen_ai.conversation.id``,                         and step
  ``openinference.span.kind``,
  ``traceloop.span.kind``
  ==========================================  ======  ===================================

The matching span, when it ends, is exported as usual with span id
``agentwatch.pending.span_id``; a pending marker without it is a step still running
(or hung, or lost with its process).

On ordinary spans: ``tool_call()`` spans carry ``agentwatch.tool.call.arguments_hash``
(string, 16 hex: BLAKE2b-64 of the canonical JSON of the *full* arguments — sorted
keys, no whitespace — the backend's ``ToolArgsHash`` algorithm), which stays exact when
``gen_ai.tool.call.arguments`` is cut to ``max_argument_chars``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentwatch_sdk._attributes import SCOPE_VERSION
from agentwatch_sdk._config import configure
from agentwatch_sdk._heartbeat import heartbeat
from agentwatch_sdk._tool import ToolCall, ToolCallHandle, current_tool_call, tool_call

if TYPE_CHECKING:
    from agentwatch_sdk._pending import PendingSpanProcessor

__version__ = SCOPE_VERSION

__all__ = [
    "PendingSpanProcessor",
    "ToolCall",
    "ToolCallHandle",
    "configure",
    "current_tool_call",
    "heartbeat",
    "tool_call",
]


def __getattr__(name: str) -> object:
    """`PendingSpanProcessor` imports the OpenTelemetry SDK, so only when asked for."""
    if name == "PendingSpanProcessor":
        try:
            from agentwatch_sdk._pending import PendingSpanProcessor
        except ModuleNotFoundError as exc:
            raise ImportError(
                "PendingSpanProcessor needs the OpenTelemetry SDK: "
                "pip install 'agentwatch-sdk[processor]'"
            ) from exc
        return PendingSpanProcessor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

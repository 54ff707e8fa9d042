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
- `check_paused(agent_name=None)` and `AgentPaused`: the kill switch (below); with it
  configured, `heartbeat()` checks too.
- `configure(tracer_provider=None, heartbeat_interval_s=5.0, max_argument_chars=4096,
  *, control_url=None, control_token=None, control_interval_s=2.0,
  control_timeout_s=1.0)`.

Nothing here raises into the agent at run time except `AgentPaused`, on purpose:
telemetry and kill-switch failures are logged at DEBUG on the `agentwatch_sdk` loggers
and swallowed (only `configure` rejects bad values).

Kill switch (agent side)
========================

An operator pauses an agent in agentwatch; the agent stops at its next step. Turned on
by `configure(control_url="http://agentwatch:8000")` or, without code, by the
environment: ``AGENTWATCH_CONTROL_URL`` (read when `control_url` is None, including
when `configure` is never called; ``""`` turns it off) and ``AGENTWATCH_CONTROL_TOKEN``
(likewise for `control_token`, sent as ``authorization: Bearer <token>``).

- Which agent: `heartbeat()` checks the agent its marker names — a
  ``gen_ai.agent.name`` keyword, else the current span's attribute (an SDK span; with
  the API alone, or in a span without it, nothing is checked). `check_paused(name)`
  checks an explicit name; `check_paused()` the current span's.
- Never blocking: each call reads a cached answer per agent; when it is older than
  `control_interval_s` (2 s) a refresh is queued for one daemon thread
  (``agentwatch-control``) that asks ``GET {control_url}/api/v1/agents/{name}/control``
  (the name percent-encoded as one path segment, ``/`` included) with
  `control_timeout_s` (1 s) per socket operation and no redirects. The first call for
  an agent passes; a pause is seen about `control_interval_s` later.
- Paused: the answer ``{"paused": true, "reason": …, "paused_at": …, "paused_by": …}``
  makes `heartbeat()` / `check_paused()` raise `AgentPaused` (a `RuntimeError` with
  ``.agent``, ``.reason``, ``.paused_at`` (aware datetime or None), ``.paused_by``)
  on every call until agentwatch answers ``"paused": false``; then they pass again.
- Failures (refused, timeout, HTTP error such as 401, bad JSON) are logged at DEBUG
  and keep the last answer: an agent never told it is paused runs on (fail open —
  agentwatch being down never stops agents); an agent told it is paused stays paused
  until agentwatch says otherwise (a kill switch must not lift itself because the
  network broke). A new process, or a new `configure()`, starts with no answers.
- Bounded: answers for the 256 most recently checked agents; one thread per
  configuration, stopped by the next `configure()`.

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
from agentwatch_sdk._control import AgentPaused
from agentwatch_sdk._heartbeat import check_paused, heartbeat
from agentwatch_sdk._tool import ToolCall, ToolCallHandle, current_tool_call, tool_call

if TYPE_CHECKING:
    from agentwatch_sdk._pending import PendingSpanProcessor

__version__ = SCOPE_VERSION

__all__ = [
    "AgentPaused",
    "PendingSpanProcessor",
    "ToolCall",
    "ToolCallHandle",
    "check_paused",
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

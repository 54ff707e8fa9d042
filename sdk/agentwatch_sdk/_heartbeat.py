"""The calls inside the agent's loop: `heartbeat()` (a rate-limited, zero-duration marker
span inside the current run, plus the kill-switch check) and `check_paused()`."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from agentwatch_sdk import _config
from agentwatch_sdk._attributes import (
    AGENT_NAME,
    CONVERSATION_ID,
    HEARTBEAT_SEQ,
    HEARTBEAT_SPAN,
    MARKER,
)

_log = logging.getLogger(__name__)

# Bounded memory: the oldest traces are forgotten first (their seq restarts at 1).
_MAX_TRACES = 4096
_MAX_KEYS = 4 * _MAX_TRACES


class _Limiter:
    """Last emission time per (trace id, thread) and a sequence number per trace."""

    def __init__(self, settings: _config.Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._last: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._seq: OrderedDict[int, int] = OrderedDict()

    def admit(self, trace_id: int) -> int | None:
        """The marker's seq if one is due now for this trace on this thread, else None."""
        key = (trace_id, threading.get_ident())
        now = self.settings.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.settings.heartbeat_interval_s:
                return None
            self._last[key] = now
            self._last.move_to_end(key)
            seq = self._seq.get(trace_id, 0) + 1
            self._seq[trace_id] = seq
            self._seq.move_to_end(trace_id)
            if len(self._last) > _MAX_KEYS:
                self._last.popitem(last=False)
            if len(self._seq) > _MAX_TRACES:
                self._seq.popitem(last=False)
            return seq


_limiter: _Limiter | None = None
_limiter_lock = threading.Lock()


def _current_limiter() -> _Limiter:
    """The limiter of the current settings: `configure()` starts with a fresh one."""
    global _limiter
    settings = _config.current()
    limiter = _limiter
    if limiter is None or limiter.settings is not settings:
        with _limiter_lock:
            if _limiter is None or _limiter.settings is not settings:
                _limiter = _Limiter(settings)
            limiter = _limiter
    return limiter


def heartbeat(**attributes: AttributeValue) -> bool:
    """Say "this run's loop is alive"; call it on every turn of the agent's loop.

    Emits a zero-duration `agentwatch.heartbeat` span as a child of the current span
    (same trace, so it belongs to the run) at most once per `heartbeat_interval_s` per
    (trace, thread); other calls only read a clock. Keyword arguments become attributes
    of the marker. Returns True when a marker was emitted; False when rate-limited,
    outside any span (there is no run to keep alive), not sampled, or on any error.

    With the kill switch configured (`configure(control_url=...)`), it then checks the
    agent the marker names (`gen_ai.agent.name` given as a keyword, else the current
    span's) and raises `AgentPaused` when agentwatch says that agent is paused — the
    only exception it ever raises. See `check_paused()`.
    """
    span: trace.Span = trace.INVALID_SPAN
    try:
        span = trace.get_current_span()
        emitted = _emit(span, attributes)
    except Exception:
        _log.debug("agentwatch heartbeat failed", exc_info=True)
        emitted = False
    _check(span, attributes.get(AGENT_NAME))
    return emitted


def check_paused(agent_name: str | None = None) -> None:
    """Raise `AgentPaused` when agentwatch says this agent is paused; else return at once.

    `agent_name` defaults to the current span's `gen_ai.agent.name` (none: nothing to
    check). Never waits on the network: it reads a per-agent cached answer and, when
    that is older than `control_interval_s`, queues a refresh on a background thread, so
    the first call for an agent passes and a pause is seen a refresh later. A no-op
    without the kill switch configured; never raises anything but `AgentPaused`.
    """
    _check(None, agent_name)


def _check(span: trace.Span | None, agent_name: object) -> None:
    """The kill-switch check for `agent_name`, else the agent of `span` (None: the current)."""
    try:
        control = _config.current().control
        if control is None:
            return
        if not isinstance(agent_name, str):
            agent_name = _agent_of(span if span is not None else trace.get_current_span())
        if not agent_name:
            return
    except Exception:
        _log.debug("agentwatch pause check failed", exc_info=True)
        return
    control.check(agent_name)  # raises AgentPaused only


def _emit(current: trace.Span, attributes: dict[str, AttributeValue]) -> bool:
    parent = current.get_span_context()
    if not parent.is_valid:
        return False
    limiter = _current_limiter()
    seq = limiter.admit(parent.trace_id)
    if seq is None:
        return False
    now = time.time_ns()
    span = limiter.settings.tracer().start_span(
        HEARTBEAT_SPAN,
        kind=trace.SpanKind.INTERNAL,
        attributes={
            **_run_identity(current),
            **attributes,
            MARKER: "heartbeat",
            HEARTBEAT_SEQ: seq,
        },
        start_time=now,
    )
    emitted = span.is_recording() and span.get_span_context().trace_flags.sampled
    span.end(end_time=now)
    return emitted


def _run_identity(span: trace.Span) -> dict[str, AttributeValue]:
    """The agent and conversation of the span the loop runs in, when it names them.

    Copied so the backend knows the run's agent while the run goes on (its agent span
    is exported only when it ends): per-agent thresholds apply from the first beat.
    Only an SDK span exposes its attributes; with the API alone there is nothing to copy.
    """
    readable = getattr(span, "attributes", None) or {}
    return {key: readable[key] for key in (AGENT_NAME, CONVERSATION_ID) if key in readable}


def _agent_of(span: trace.Span) -> str | None:
    name = (getattr(span, "attributes", None) or {}).get(AGENT_NAME)
    return name if isinstance(name, str) else None

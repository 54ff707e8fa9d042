"""`tool_call()`: an `execute_tool` span per the GenAI conventions, as `with` or decorator."""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from agentwatch_sdk import _config
from agentwatch_sdk._arguments import arguments_hash, call_arguments, signature_of, to_json
from agentwatch_sdk._attributes import (
    ERROR_TYPE,
    OPERATION,
    TOOL_ARGUMENTS,
    TOOL_ARGUMENTS_HASH,
    TOOL_CALL_ID,
    TOOL_NAME,
)

P = ParamSpec("P")
R = TypeVar("R")

_log = logging.getLogger(__name__)


class ToolCallHandle:
    """A running tool call: what `with tool_call(...) as call` gives you."""

    def __init__(self, span: trace.Span, call_id: str) -> None:
        self.span = span
        self.call_id = call_id

    def mark_failed(self, error_type: str, message: str = "") -> None:
        """Record a failure the tool reported in a result rather than by raising.

        Sets `error.type` and an ERROR status, so the call counts as failed. Never raises.
        """
        try:
            self.span.set_attribute(ERROR_TYPE, error_type)
            self.span.set_status(Status(StatusCode.ERROR, message or None))
        except Exception:
            _log.debug("agentwatch mark_failed failed", exc_info=True)


_OtelToken = contextvars.Token[context_api.Context]
_HandleToken = contextvars.Token[ToolCallHandle | None]
_current: contextvars.ContextVar[ToolCallHandle | None] = contextvars.ContextVar(
    "agentwatch_tool_call", default=None
)


def current_tool_call() -> ToolCallHandle | None:
    """The innermost running `tool_call` (e.g. to `mark_failed` from a decorated tool)."""
    return _current.get()


class ToolCall:
    """A tool call span; use as `with tool_call(...) as call:` or as `@tool_call(...)`.

    As a decorator it starts a new span for every call, so decorated functions are safe
    to run concurrently; one object used in `with` blocks serves one block at a time.
    """

    def __init__(self, name: str, arguments: object, call_id: str | None) -> None:
        self._name = name
        self._arguments = arguments
        self._call_id = call_id
        self._open: list[tuple[ToolCallHandle, _OtelToken | None, _HandleToken]] = []

    def __enter__(self) -> ToolCallHandle:
        settings = _config.current()
        call_id = self._call_id or f"call_{secrets.token_hex(12)}"
        span: trace.Span = trace.INVALID_SPAN
        otel_token: _OtelToken | None = None
        try:
            span = settings.tracer().start_span(
                f"execute_tool {self._name}",
                kind=trace.SpanKind.INTERNAL,
                attributes=self._attributes(call_id, settings.max_argument_chars),
            )
            otel_token = context_api.attach(trace.set_span_in_context(span))
        except Exception:  # the tool runs whatever happens to its telemetry
            _log.debug("agentwatch tool_call span failed to start", exc_info=True)
        handle = ToolCallHandle(span, call_id)
        self._open.append((handle, otel_token, _current.set(handle)))
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle, otel_token, var_token = self._open.pop()
        _quietly(_current.reset, var_token)
        # Cancellation, KeyboardInterrupt, SystemExit: not the tool's failure.
        if isinstance(exc, Exception):
            _quietly(_record_failure, handle.span, exc)
        if otel_token is not None:
            _quietly(context_api.detach, otel_token)
        _quietly(handle.span.end)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        signature = signature_of(func) if self._arguments is None else None

        def for_call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> ToolCall:
            arguments = self._arguments
            if signature is not None:
                arguments = call_arguments(signature, args, kwargs)
            return ToolCall(self._name, arguments, self._call_id)

        if inspect.iscoroutinefunction(func):
            coroutine_function = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with for_call(args, kwargs):
                    return await coroutine_function(*args, **kwargs)

            return cast(Callable[P, R], run_async)

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with for_call(args, kwargs):
                return func(*args, **kwargs)

        return run

    def _attributes(self, call_id: str, max_chars: int) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {
            OPERATION: "execute_tool",
            TOOL_NAME: self._name,
            TOOL_CALL_ID: call_id,
        }
        if self._arguments is not None:
            text = to_json(self._arguments)
            digest = arguments_hash(text)
            if digest:
                attributes[TOOL_ARGUMENTS_HASH] = digest
            if max_chars:
                attributes[TOOL_ARGUMENTS] = text[:max_chars]
        return attributes


def _record_failure(span: trace.Span, exc: Exception) -> None:
    span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
    span.set_status(Status(StatusCode.ERROR, str(exc) or None))
    span.record_exception(exc)


def _quietly(action: Callable[..., object], *args: Any) -> None:
    """Run one step of telemetry bookkeeping; a failure is logged, never raised."""
    try:
        action(*args)
    except Exception:
        _log.debug("agentwatch tool_call bookkeeping failed", exc_info=True)


def tool_call(name: str, *, arguments: object = None, call_id: str | None = None) -> ToolCall:
    """An `execute_tool {name}` span (kind INTERNAL) around one call of a tool.

    As a context manager, `arguments` are what you pass; as a decorator (sync or async
    functions), the call's bound arguments unless you pass `arguments`. Records
    `gen_ai.operation.name = "execute_tool"`, `gen_ai.tool.name`, `gen_ai.tool.call.id`
    (`call_id`, or a generated `call_<hex>`), `gen_ai.tool.call.arguments` (JSON; a `str`
    is taken as already-serialized JSON; cut to `max_argument_chars`) and
    `agentwatch.tool.call.arguments_hash`. An exception leaving the block sets
    `error.type` (its class's qualname), an ERROR status with its message and an
    exception event, then propagates. `call.mark_failed(error_type, message)` does the
    same for a failure reported inside a result. (Decorating a generator function
    spans only the creation of the generator.)
    """
    return ToolCall(name, arguments, call_id)

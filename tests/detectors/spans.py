"""A tiny builder of `AgentSpan`s for the detector tests: defaults for every field.

Times are seconds after `T0` (a fixed Unix time), so a test reads `tool(..., 4, 9)`
as "a tool call from t=4 s to t=9 s"; `at(s)` is the same instant in Unix ns.
"""

from __future__ import annotations

from typing import Any

from ingest import AgentSpan

NS = 1_000_000_000
T0 = 1_700_000_000 * NS

TENANT = "acme"
SERVICE = "support-bot"
INSTANCE = "pod-1"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT = "planner"
RUN = "run-1"
ROOT = "00f067aa0ba902b7"  # the agent span (invoke_agent) of TRACE

_DEFAULT = AgentSpan(
    tenant=TENANT,
    service_name=SERVICE,
    service_instance_id=INSTANCE,
    trace_id=TRACE,
    span_id="",
    parent_span_id="",
    name="span",
    start_ns=T0,
    end_ns=T0,
    agent_name=AGENT,
    run_id=RUN,
    operation="",
    tool_name="",
    tool_args_hash="",
    input_tokens=0,
    output_tokens=0,
    is_error=False,
    error_type="",
)


def at(seconds: float) -> int:
    """Unix ns of `seconds` after T0."""
    return T0 + round(seconds * NS)


def span(span_id: str, start_s: float, end_s: float, **fields: Any) -> AgentSpan:
    """Any span: every field not given keeps its default."""
    return _DEFAULT._replace(span_id=span_id, start_ns=at(start_s), end_ns=at(end_s), **fields)


def agent_root(start_s: float, end_s: float, span_id: str = ROOT, **fields: Any) -> AgentSpan:
    """The run's `invoke_agent` span, ended."""
    fields = {"name": f"invoke_agent {AGENT}", "operation": "invoke_agent", **fields}
    return span(span_id, start_s, end_s, **fields)


def tool_call(
    span_id: str,
    start_s: float,
    end_s: float,
    tool: str = "search",
    args_hash: str = "a1",
    parent: str = ROOT,
    **fields: Any,
) -> AgentSpan:
    """An ended `execute_tool` span."""
    return span(
        span_id,
        start_s,
        end_s,
        name=f"execute_tool {tool}",
        operation="execute_tool",
        tool_name=tool,
        tool_args_hash=args_hash,
        parent_span_id=parent,
        **fields,
    )


def llm_call(
    span_id: str,
    start_s: float,
    end_s: float,
    tokens: tuple[int, int] = (100, 20),
    parent: str = ROOT,
    **fields: Any,
) -> AgentSpan:
    """An ended `chat` span with (input, output) tokens."""
    return span(
        span_id,
        start_s,
        end_s,
        name="chat gpt-4o",
        operation="chat",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        parent_span_id=parent,
        **fields,
    )


def pending(
    started: str,
    at_s: float,
    operation: str = "invoke_agent",
    tool: str = "",
    parent: str = "",
    name: str = "",
    **fields: Any,
) -> AgentSpan:
    """agentwatch_sdk's marker that span `started` began at `at_s`.

    The marker has its own span id ("ee" + the started id's tail) and the started
    span's parent, operation and tool, as the SDK's PendingSpanProcessor sends it.
    """
    name = name or " ".join(part for part in (operation, tool or AGENT) if part)
    return span(
        f"ee{started[2:]}",
        at_s,
        at_s,
        name="agentwatch.pending",
        operation=operation,
        tool_name=tool,
        parent_span_id=parent,
        marker="pending",
        pending_span_id=started,
        pending_name=name,
        **fields,
    )


def heartbeat(at_s: float, parent: str = ROOT, **fields: Any) -> AgentSpan:
    """agentwatch_sdk's heartbeat: a zero-duration marker, child of the loop span."""
    return span(
        f"b{round(at_s * 1000):015x}",
        at_s,
        at_s,
        name="agentwatch.heartbeat",
        parent_span_id=parent,
        marker="heartbeat",
        **fields,
    )

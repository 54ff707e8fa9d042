"""Context derived from enclosing spans: the agent of a tool call, the run of a step.

Spans arrive in any order and split across many requests (an exporter sends a span
when it ends, so children usually arrive before their root). The resolver remembers a
bounded window of recent spans' parent links and walks up from a span to the nearest
ancestor that names an agent or a run. What it cannot see yet falls back to a trace
that has exactly one known agent; the caller then falls back to the service name and
the trace id. The trace API repeats the walk at read time over the complete trace.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

_MAX_DEPTH = 64  # a cycle guard: real agent traces are far shallower


class SpanLink(NamedTuple):
    """A span's place in its trace and what it says about itself (ids as raw bytes)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    agent_name: str
    run_id: str


class EnclosingResolver:
    """Bounded memory of recent spans (FIFO eviction) used to resolve agent and run."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._spans: dict[tuple[bytes, bytes], SpanLink] = {}
        self._trace_agents: dict[bytes, str] = {}  # trace -> its single agent, "" if many

    def remember(self, links: Iterable[SpanLink]) -> None:
        spans = self._spans
        trace_agents = self._trace_agents
        for link in links:
            spans[(link.trace_id, link.span_id)] = link
            if link.agent_name:
                known = trace_agents.get(link.trace_id)
                if known is None:
                    trace_agents[link.trace_id] = link.agent_name
                elif known != link.agent_name:
                    trace_agents[link.trace_id] = ""
        self._evict()

    def _evict(self) -> None:
        excess = len(self._spans) - self._capacity
        if excess > 0:
            for key in list(self._spans)[:excess]:
                del self._spans[key]
        excess = len(self._trace_agents) - self._capacity // 4
        if excess > 0:
            for trace_id in list(self._trace_agents)[:excess]:
                del self._trace_agents[trace_id]

    def resolve(self, link: SpanLink) -> tuple[str, str]:
        """(agent name, run id) from `link` or its nearest ancestors; "" where unknown."""
        agent_name, run_id = link.agent_name, link.run_id
        current = link
        for _ in range(_MAX_DEPTH):
            if (agent_name and run_id) or not current.parent_span_id:
                break
            parent = self._spans.get((current.trace_id, current.parent_span_id))
            if parent is None:
                break
            agent_name = agent_name or parent.agent_name
            run_id = run_id or parent.run_id
            current = parent
        if not agent_name:
            agent_name = self._trace_agents.get(link.trace_id, "")
        return agent_name, run_id

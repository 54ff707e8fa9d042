"""Context derived from enclosing spans: the agent of a tool call, the run of a step.

Spans arrive in any order and split across many requests: an exporter sends a span
when it ends, so children usually arrive before their root. The resolver keeps a
bounded memory of recent spans (parent links, what each says about itself, and what
it was attributed). A span takes its agent and run from itself, else from its parent's
attribution. When an ancestor arrives *after* its descendants, the attribution flows
down to them and each changed descendant is reported as a `Correction`, which ingest
stores with the ancestor and applies to the rows already written.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any, NamedTuple


class SpanLink(NamedTuple):
    """A span's place in its trace and what it says about itself (ids as raw bytes)."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes
    agent_name: str
    run_id: str


def announced_link(marker: SpanLink, started_span_id_hex: str) -> list[SpanLink]:
    """The link of the span a pending marker announced (the marker shares its parent).

    A pending marker (agentwatch_sdk) is sent when a span starts. Until that span ends
    and arrives, the marker is what places it in its trace, so the steps under a
    running agent span take the agent's name as they arrive, not only after the run.
    """
    try:
        span_id = bytes.fromhex(started_span_id_hex)
    except ValueError:
        return []
    if len(span_id) != 8:
        return []
    return [marker._replace(span_id=span_id)]


class Correction(NamedTuple):
    """A span seen earlier whose inherited agent or run is now known better."""

    trace_id: bytes
    span_id: bytes
    agent_name: str
    run_id: str


@dataclass(slots=True)
class _Node:
    link: SpanLink
    agent_name: str  # as attributed: its own, else inherited ("" = not known yet)
    run_id: str


class EnclosingResolver:
    """Bounded memory of recent spans (oldest forgotten first)."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._capacity = capacity
        self._nodes: dict[tuple[bytes, bytes], _Node] = {}
        self._children: dict[tuple[bytes, bytes], list[bytes]] = {}

    def add(self, links: Iterable[SpanLink]) -> tuple[list[tuple[str, str]], list[Correction]]:
        """Remember one request's spans.

        Returns each span's (agent, run) attribution — "" where no enclosing span is
        known yet — and corrections for spans of *earlier* requests that this
        request's spans enclose.
        """
        batch = list(links)
        new_keys = {(link.trace_id, link.span_id) for link in batch}
        changed: dict[tuple[bytes, bytes], _Node] = {}
        for link in batch:
            self._insert(link, changed)
        self._evict()
        attributions = []
        for link in batch:
            node = self._nodes.get((link.trace_id, link.span_id))
            attributions.append((node.agent_name, node.run_id) if node else ("", ""))
        corrections = [
            Correction(key[0], key[1], node.agent_name, node.run_id)
            for key, node in changed.items()
            if key not in new_keys
        ]
        return attributions, corrections

    def _insert(self, link: SpanLink, changed: dict[tuple[bytes, bytes], _Node]) -> None:
        key = (link.trace_id, link.span_id)
        parent = (
            self._nodes.get((link.trace_id, link.parent_span_id)) if link.parent_span_id else None
        )
        node = _Node(
            link,
            link.agent_name or (parent.agent_name if parent else ""),
            link.run_id or (parent.run_id if parent else ""),
        )
        self._nodes[key] = node
        if link.parent_span_id:
            self._children.setdefault((link.trace_id, link.parent_span_id), []).append(link.span_id)
        self._push_down(node, changed)

    def _push_down(self, ancestor: _Node, changed: dict[tuple[bytes, bytes], _Node]) -> None:
        """Hand an attribution to descendants that arrived first and lack their own."""
        pending = [ancestor]
        while pending:
            node = pending.pop()
            trace_id = node.link.trace_id
            for child_id in self._children.get((trace_id, node.link.span_id), ()):
                child = self._nodes.get((trace_id, child_id))
                if child is None:
                    continue
                agent_name = child.link.agent_name or node.agent_name
                run_id = child.link.run_id or node.run_id
                if (agent_name, run_id) != (child.agent_name, child.run_id):
                    child.agent_name, child.run_id = agent_name, run_id
                    changed[(trace_id, child_id)] = child
                    pending.append(child)

    def _evict(self) -> None:
        excess = len(self._nodes) - self._capacity
        if excess <= 0:
            return
        for key in list(islice(self._nodes, excess)):
            node = self._nodes.pop(key)
            self._children.pop(key, None)
            parent_key = (node.link.trace_id, node.link.parent_span_id)
            siblings = self._children.get(parent_key)
            if siblings is not None:
                _remove(siblings, node.link.span_id)
                if not siblings:
                    del self._children[parent_key]


def _remove(items: list[Any], item: Any) -> None:
    with contextlib.suppress(ValueError):
        items.remove(item)

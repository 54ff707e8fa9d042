"""The columnar span batch that flows from translation to the store and the detectors."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# Dataclass field name -> ClickHouse column name, for the Nested sub-columns.
_NESTED_NAMES = {
    "EventsTimestamp": "Events.Timestamp",
    "EventsName": "Events.Name",
    "EventsAttributes": "Events.Attributes",
    "LinksTraceId": "Links.TraceId",
    "LinksSpanId": "Links.SpanId",
    "LinksTraceState": "Links.TraceState",
    "LinksAttributes": "Links.Attributes",
}


@dataclass(slots=True)
class SpanBatch:
    """One list per `otel_traces` column, all the same length (one entry per span)."""

    Timestamp: list[int] = field(default_factory=list)
    TraceId: list[str] = field(default_factory=list)
    SpanId: list[str] = field(default_factory=list)
    ParentSpanId: list[str] = field(default_factory=list)
    TraceState: list[str] = field(default_factory=list)
    SpanName: list[str] = field(default_factory=list)
    SpanKind: list[str] = field(default_factory=list)
    ServiceName: list[str] = field(default_factory=list)
    ResourceAttributes: list[dict[str, str]] = field(default_factory=list)
    ScopeName: list[str] = field(default_factory=list)
    ScopeVersion: list[str] = field(default_factory=list)
    SpanAttributes: list[dict[str, str]] = field(default_factory=list)
    Duration: list[int] = field(default_factory=list)
    StatusCode: list[str] = field(default_factory=list)
    StatusMessage: list[str] = field(default_factory=list)
    EventsTimestamp: list[list[int]] = field(default_factory=list)
    EventsName: list[list[str]] = field(default_factory=list)
    EventsAttributes: list[list[dict[str, str]]] = field(default_factory=list)
    LinksTraceId: list[list[str]] = field(default_factory=list)
    LinksSpanId: list[list[str]] = field(default_factory=list)
    LinksTraceState: list[list[str]] = field(default_factory=list)
    LinksAttributes: list[list[dict[str, str]]] = field(default_factory=list)
    TenantId: list[str] = field(default_factory=list)
    AgentName: list[str] = field(default_factory=list)
    AgentId: list[str] = field(default_factory=list)
    RunId: list[str] = field(default_factory=list)
    Operation: list[str] = field(default_factory=list)
    ToolName: list[str] = field(default_factory=list)
    ToolCallId: list[str] = field(default_factory=list)
    ToolArgsHash: list[str] = field(default_factory=list)
    RequestModel: list[str] = field(default_factory=list)
    ResponseModel: list[str] = field(default_factory=list)
    Provider: list[str] = field(default_factory=list)
    InputTokens: list[int] = field(default_factory=list)
    OutputTokens: list[int] = field(default_factory=list)
    ErrorType: list[str] = field(default_factory=list)
    IsError: list[int] = field(default_factory=list)
    Marker: list[str] = field(default_factory=list)
    CostUsd: list[float | None] = field(default_factory=list)
    CostPriceId: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.SpanId)

    def extend(self, other: SpanBatch) -> None:
        for name in FIELD_NAMES:
            getattr(self, name).extend(getattr(other, name))

    def columns(self) -> list[list[Any]]:
        """The column data in `COLUMN_NAMES` order (for column-oriented inserts)."""
        return [getattr(self, name) for name in FIELD_NAMES]

    def row(self, index: int) -> dict[str, Any]:
        """One span as a dict keyed by column name (for detectors and tests)."""
        return {
            col: getattr(self, name)[index]
            for name, col in zip(FIELD_NAMES, COLUMN_NAMES, strict=True)
        }


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(SpanBatch))
COLUMN_NAMES: tuple[str, ...] = tuple(_NESTED_NAMES.get(n, n) for n in FIELD_NAMES)

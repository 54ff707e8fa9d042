"""What the query endpoints share: the time range, the caller's tenant, bound filters,
opaque cursors, and the SQL meaning of "a tool call", "an LLM call" and "a run".

Every value from a request is a bound parameter (`{name:Type}`); the only text put
into SQL is from this module's constants and validated table names.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import HTTPException

from api._time import parse_duration_s, parse_time, to_ns
from ingest._conventions import LLM_OPERATIONS

# Span kinds, as SQL over otel_traces (markers are signals, never work).
NOT_MARKER = "Marker = ''"
TOOL_CALL = "ToolName != '' AND Operation != 'invoke_agent' AND Marker = ''"
LLM_CALL = (
    "Operation IN (" + ", ".join(f"'{op}'" for op in sorted(LLM_OPERATIONS)) + ") AND Marker = ''"
)
AGENT_SPAN = "Operation = 'invoke_agent' AND Marker = ''"
MODEL = "if(ResponseModel != '', ResponseModel, RequestModel)"
# A run failed when one of its agent spans (invoke_agent) ended in error.
RUN_FAILED = "maxIf(IsError, Operation = 'invoke_agent')"
STEP = "Operation != 'invoke_agent' AND Marker = ''"


def time_param(name: str, value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    try:
        return parse_time(value)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"{name}: {exc}") from None


def step_seconds(value: str, *, minimum_s: int = 1) -> int:
    """A bucket width in whole seconds (`30s`, `5m`, `1h`, or plain seconds).

    Shorter steps are rounded up to `minimum_s`: Grafana sends `${__interval}` values
    such as `500ms` for short ranges, and a coarser bucket is the useful answer.
    """
    try:
        seconds = float(value) if value.replace(".", "", 1).isdigit() else parse_duration_s(value)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=f"step: {exc}") from None
    return max(minimum_s, math.ceil(seconds))


@dataclass
class Where:
    """A WHERE clause built from bound parameters."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def add(self, clause: str, **params: Any) -> Where:
        self.clauses.append(clause)
        self.params.update(params)
        return self

    def equal(self, column: str, name: str, value: str | None) -> Where:
        """`column = {name}` when a value was given (filters left empty match all)."""
        if value is not None and value != "":
            self.add(f"{column} = {{{name}:String}}", **{name: value})
        return self

    def tenant(self, tenant: str | None, column: str = "TenantId") -> Where:
        if tenant is not None:
            self.add(f"{column} = {{tenant:String}}", tenant=tenant)
        return self

    def time_range(
        self,
        since: str | None,
        until: str | None,
        default_window: timedelta,
        column: str = "Timestamp",
    ) -> tuple[datetime, datetime]:
        now = datetime.now(UTC)
        start = time_param("since", since, now - default_window)
        end = time_param("until", until, now + timedelta(minutes=5))
        if end < start:
            raise HTTPException(status_code=400, detail="until is before since")
        self.add(
            f"{column} >= fromUnixTimestamp64Nano({{since_ns:Int64}}) "
            f"AND {column} <= fromUnixTimestamp64Nano({{until_ns:Int64}})",
            since_ns=to_ns(start),
            until_ns=to_ns(end),
        )
        return start, end

    def sql(self) -> str:
        return " AND ".join(self.clauses) if self.clauses else "1"


def encode_cursor(time_ns: int, key: str) -> str:
    """An opaque cursor for "after this row" in (time desc, key desc) order."""
    return base64.urlsafe_b64encode(f"{time_ns}:{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        time_text, _, key = base64.urlsafe_b64decode(padded).decode().partition(":")
        return int(time_text), key
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise HTTPException(status_code=400, detail="cursor: not a cursor from this API") from None

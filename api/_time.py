"""Time parsing and formatting for the API: RFC 3339 in UTC, nanosecond precision."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h|d|w|y)$")
_UNITS_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 365 * 86400.0,  # Grafana's intervals for long ranges
}


def parse_duration_s(text: str) -> float:
    """`"30s"`, `"5m"`, `"6h"`, `"7d"` -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30s, 5m, 6h, 7d")
    return float(match.group(1)) * _UNITS_S[match.group(2)]


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time, a Unix time in seconds or milliseconds, or a duration ago."""
    text = text.strip()
    now = now or datetime.now(UTC)
    if _DURATION.match(text):
        return now - timedelta(seconds=parse_duration_s(text))
    if re.fullmatch(r"\d+(\.\d+)?", text):
        value = float(text)
        try:
            return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError(f"{text!r} is out of range for a Unix time") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 time, a Unix time or a duration") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_ns(unix_ns: int) -> str:
    """Unix nanoseconds -> `2026-11-24T08:35:21.135352888Z`."""
    seconds, nanos = divmod(int(unix_ns), 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def to_ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000

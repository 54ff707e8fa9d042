"""Small helpers shared by the detectors: time text, durations, bounded maps."""

from __future__ import annotations

from collections import OrderedDict
from datetime import UTC, datetime
from typing import Generic, TypeVar

from ingest._conventions import LLM_OPERATIONS

NS = 1_000_000_000
__all__ = ["LLM_OPERATIONS", "NS", "BoundedDict", "human_duration", "iso"]

K = TypeVar("K")
V = TypeVar("V")


def iso(ns: int) -> str:
    """RFC 3339 UTC text of a Unix-ns time, millisecond precision."""
    moment = datetime.fromtimestamp(ns / NS, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def human_duration(seconds: float) -> str:
    """ "2h13m", "4m05s", "12s": how long, for a summary line."""
    whole = int(max(seconds, 0))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class BoundedDict(OrderedDict[K, V], Generic[K, V]):
    """A dict that forgets its oldest-touched entries beyond `capacity`."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def touch(self, key: K) -> None:
        self.move_to_end(key)

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.capacity:
            self.popitem(last=False)

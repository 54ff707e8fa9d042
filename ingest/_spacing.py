"""Spacing for periodic work whose cost grows with the state it covers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Saving the detectors' state or collecting the garbage of a big heap takes longer as
# traffic grows the state (a 10 MB state: ~1 s to save); such work is spaced so that
# it takes at most 1/COST_SHARE of the time.
COST_SHARE = 20


class CostSpacing:
    """When work that just took `cost_s` may run again: after COST_SHARE times that."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._ended_at = clock()
        self._cost_s = 0.0

    def due(self, interval_s: float = 0.0) -> bool:
        """Due after `interval_s` at the earliest, and after COST_SHARE times its last cost."""
        return self._clock() - self._ended_at >= max(interval_s, COST_SHARE * self._cost_s)

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Run the work inside this: its duration sets when it is next due."""
        started = self._clock()
        try:
            yield
        finally:
            self._ended_at = self._clock()
            self._cost_s = self._ended_at - started

"""The adaptive idle threshold: recent gaps between a run's activity, per agent."""

from __future__ import annotations

import math
from collections import deque


class GapHistory:
    """The last `size` gaps (seconds) between consecutive activity within runs.

    Quantiles are recomputed after every `refresh_every` new gaps, not on each one: a
    threshold a few samples stale is as good, and sorting per span would dominate.
    """

    def __init__(
        self, size: int = 512, gaps: list[float] | None = None, refresh_every: int = 32
    ) -> None:
        self._gaps: deque[float] = deque(gaps or (), maxlen=size)
        self._sorted: list[float] | None = None
        self._refresh_every = refresh_every
        self._added = 0

    def add(self, gap_s: float) -> None:
        self._gaps.append(gap_s)
        self._added += 1
        if self._sorted is None or len(self._gaps) <= self._refresh_every:
            self._sorted = None  # small histories: always exact
        elif self._added >= self._refresh_every:
            self._sorted = None

    def __len__(self) -> int:
        return len(self._gaps)

    def quantile(self, q: float) -> float:
        """The q-quantile (nearest rank) of the recent gaps; 0 when there are none."""
        if not self._gaps:
            return 0.0
        if self._sorted is None:
            self._sorted = sorted(self._gaps)
            self._added = 0
        rank = min(len(self._sorted) - 1, max(0, math.ceil(q * len(self._sorted)) - 1))
        return self._sorted[rank]

    def to_list(self) -> list[float]:
        return list(self._gaps)

"""The adaptive idle threshold: recent gaps between a run's activity, per agent."""

from __future__ import annotations

import math
from collections import deque


class GapHistory:
    """The last `size` gaps (seconds) between consecutive activity within runs."""

    def __init__(self, size: int = 512, gaps: list[float] | None = None) -> None:
        self._gaps: deque[float] = deque(gaps or (), maxlen=size)
        self._sorted: list[float] | None = None

    def add(self, gap_s: float) -> None:
        self._gaps.append(gap_s)
        self._sorted = None

    def __len__(self) -> int:
        return len(self._gaps)

    def quantile(self, q: float) -> float:
        """The q-quantile (nearest rank) of the recent gaps; 0 when there are none."""
        if not self._gaps:
            return 0.0
        if self._sorted is None:
            self._sorted = sorted(self._gaps)
        rank = min(len(self._sorted) - 1, max(0, math.ceil(q * len(self._sorted)) - 1))
        return self._sorted[rank]

    def to_list(self) -> list[float]:
        return list(self._gaps)

"""Spacing for periodic work whose cost grows with the state it covers."""

from __future__ import annotations

# Saving the detectors' state or collecting the garbage of a big heap takes longer as
# traffic grows the state (a 10 MB state: ~1 s to save); such work is spaced so that
# it takes at most 1/COST_SHARE of the time.
COST_SHARE = 20


def due_again(elapsed_s: float, last_cost_s: float, interval_s: float = 0.0) -> bool:
    """Whether work that took `last_cost_s` last time is due `elapsed_s` after it ended.

    Due after `interval_s` at the earliest, and after COST_SHARE times its last cost.
    """
    return elapsed_s >= max(interval_s, COST_SHARE * last_cost_s)

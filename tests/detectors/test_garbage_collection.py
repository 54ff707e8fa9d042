"""The detector process's cycle collector: cheap collections, and old cycles still found."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from detectors._core import SpacedGarbageCollection


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> _Node:
    """Two objects that only a cycle collection can free."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return first


class _Clock:
    """A clock that stands still inside a collection, so one is always due."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[_Clock]:
    yield _Clock()
    gc.unfreeze()
    gc.enable()
    gc.collect()


def test_a_new_cycle_is_collected(clock: _Clock) -> None:
    collector = SpacedGarbageCollection(clock=clock)
    collector.collect_if_due()
    gone = weakref.ref(_cycle())
    clock.now += 1
    collector.collect_if_due()
    assert gone() is None


def test_survivors_are_frozen_and_an_old_cycle_is_found_by_the_next_full_collection(
    clock: _Clock,
) -> None:
    collector = SpacedGarbageCollection(full_every_s=600, clock=clock)
    collector.collect_if_due()  # the first collection is full and freezes the heap
    kept = [_cycle()]
    gone = weakref.ref(kept[0])
    clock.now += 1
    collector.collect_if_due()  # the cycle survives (still referenced): frozen
    assert gc.get_freeze_count() > 0
    kept.clear()
    clock.now += 1
    collector.collect_if_due()  # frozen objects are not looked at again...
    assert gone() is not None
    clock.now += 600
    collector.collect_if_due()  # ...until a full collection
    assert gone() is None


def test_a_full_collection_runs_once_the_frozen_heap_has_doubled(clock: _Clock) -> None:
    collector = SpacedGarbageCollection(full_every_s=1e9, size_check_every_s=30, clock=clock)
    collector.collect_if_due()
    kept = [_cycle()]
    gone = weakref.ref(kept[0])
    clock.now += 1
    collector.collect_if_due()
    kept.clear()
    grown: list[list[int]] = [[] for _ in range(2 * gc.get_freeze_count())]  # state doubles
    clock.now += 1
    collector.collect_if_due()  # young: freezes the new state
    assert gone() is not None
    clock.now += 1
    collector.collect_if_due()  # doubled, but its size is checked only every 30 s
    assert gone() is not None
    clock.now += 30
    collector.collect_if_due()  # the frozen heap has doubled: full
    assert gone() is None
    del grown

"""The detectors' own work, apart from the server: feed segments, tick, save, restore.

`DetectorCore` is synchronous and owns the engine, its position in the log and its
state file. `serve` runs it in a separate process (`ProcessCore`), because detecting
is Python work on every span and would otherwise share the GIL with the receivers;
`InlineCore` runs it on a thread of the calling process (tests, and a fallback).
Everything crossing the boundary is plain data (finding dicts, paths, numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

from detectors._config import DetectorConfig
from detectors._engine import DetectorEngine
from detectors._jobs import JobRegistry
from ingest import read_agent_spans
from ingest._prices import PriceTable
from ingest._spacing import CostSpacing

log = logging.getLogger("agentwatch.detectors")

_STATE_VERSION = 1
FindingData = dict[str, Any]


Pricing = list[dict[str, Any]]  # the config's `pricing:` entries, as plain data


class DetectorCore:
    def __init__(
        self,
        config_section: dict[str, Any] | None,
        state_path: Path,
        pricing: Pricing | None = None,
    ) -> None:
        self._engine = DetectorEngine(
            DetectorConfig.from_dict(config_section), PriceTable.load(overrides=pricing)
        )
        self._state_path = state_path
        self._position: tuple[str, int] = ("", 0)  # (wal id, number) of the last segment fed

    def load(self) -> list[FindingData]:
        """Restore the saved state; return the findings it had not written yet."""
        try:
            state = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.error("detector state %s unreadable, starting fresh: %s", self._state_path, exc)
            return []
        if state.get("version") != _STATE_VERSION:
            log.warning("detector state %s has another version, starting fresh", self._state_path)
            return []
        wal_id, number = state.get("position", ["", 0])
        self._position = (wal_id, int(number))
        self._engine.restore(state.get("detectors", {}))
        unwritten: list[FindingData] = state.get("unwritten", [])
        return unwritten

    def feed(self, path: str, wal_id: str, number: int) -> tuple[int, list[FindingData]]:
        """Feed one stored log segment: (spans fed, findings published).

        A segment the saved state already includes (a replay after a crash) is skipped.
        """
        last_wal_id, last_number = self._position
        if wal_id == last_wal_id and number <= last_number:
            return 0, []
        spans = read_agent_spans(Path(path), self._engine.extra_keys())
        self._engine.consume(spans)
        self._position = (wal_id, number)
        return len(spans), self._taken()

    def set_jobs(self, jobs: list[dict[str, Any]] | None) -> list[FindingData]:
        """Job descriptions as plain data (None: governance off)."""
        self._engine.set_jobs(None if jobs is None else JobRegistry.from_data(jobs))
        return self._taken()

    def tick(self, now_ns: int) -> list[FindingData]:
        self._engine.tick(now_ns)
        return self._taken()

    def save(self, unwritten: list[FindingData]) -> None:
        """Write the state (with the caller's unwritten findings) atomically."""
        state = {
            "version": _STATE_VERSION,
            "position": list(self._position),
            "detectors": self._engine.snapshot(),
            "unwritten": unwritten,
        }
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._state_path.with_suffix(".tmp")
        # dumps, not dump: json.dump streams through the pure-Python encoder, which
        # took ~2 s for a 10 MB state; dumps encodes in C.
        text = json.dumps(state, separators=(",", ":"))
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self._state_path)

    def _taken(self) -> list[FindingData]:
        return [finding.as_dict() for finding in self._engine.take_findings()]


class CoreClient(Protocol):
    """How the server-side stage reaches a DetectorCore (each call in order)."""

    async def start(self) -> None: ...

    async def call(self, method: str, *args: Any) -> Any: ...

    async def stop(self) -> None: ...


class InlineCore:
    """The core on one worker thread of this process."""

    def __init__(
        self,
        config_section: dict[str, Any] | None,
        state_path: Path,
        pricing: Pricing | None = None,
    ) -> None:
        self._core = DetectorCore(config_section, state_path, pricing)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-detectors")

    async def start(self) -> None:
        return None

    async def call(self, method: str, *args: Any) -> Any:
        function = getattr(self._core, method)
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)

    async def stop(self) -> None:
        self._thread.shutdown(wait=True)


class CoreProcessDied(RuntimeError):
    """The detector process exited; the caller restarts it and replays what it lost."""


class ProcessCore:
    """The core in a child process, driven over a pipe (one request, one answer)."""

    def __init__(
        self,
        config_section: dict[str, Any] | None,
        state_path: Path,
        pricing: Pricing | None = None,
    ) -> None:
        self._args = (config_section, str(state_path), pricing)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="agentwatch-detector-pipe")
        self._process: Any = None
        self._conn: Connection | None = None
        self._stopped = False

    async def start(self) -> None:
        """Start the process; a no-op while it runs (`serve` starts it before the store
        opens, so that its imports overlap the opening, then the stage starts it)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._spawn_if_needed)

    def _spawn_if_needed(self) -> None:
        if self._conn is None:
            self._spawn()

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=_serve_core, args=(child, *self._args), name="agentwatch-detectors"
        )
        process.daemon = True  # never outlives the server
        process.start()
        child.close()
        self._process, self._conn = process, parent

    async def call(self, method: str, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, self._round_trip, method, args
        )

    def _round_trip(self, method: str, args: tuple[Any, ...]) -> Any:
        if self._conn is None:
            self._spawn()
        assert self._conn is not None
        try:
            self._conn.send((method, args))
            ok, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._reap()
            raise CoreProcessDied(f"detector process exited: {exc or type(exc).__name__}") from None
        if not ok:
            raise RuntimeError(f"detector {method} failed: {value}")
        return value

    def _reap(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._process is not None:
            self._process.join(timeout=5)
        self._process = self._conn = None

    async def stop(self) -> None:
        """Stop the process. Idempotent: `serve` stops it too if the stage never started."""
        if self._stopped:
            return
        self._stopped = True

        def stop_child() -> None:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(("exit", ()))
            self._reap()

        await asyncio.get_running_loop().run_in_executor(self._thread, stop_child)
        self._thread.shutdown(wait=True)


def _serve_core(
    conn: Connection,
    config_section: dict[str, Any] | None,
    state_path: str,
    pricing: Pricing | None = None,
) -> None:
    """The child process: answer requests until told to exit or the server goes away."""
    # The server decides when to stop: a Ctrl-C to the process group must not kill
    # the detectors before the server has drained into them and saved their state.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    core = DetectorCore(config_section, Path(state_path), pricing)
    garbage = SpacedGarbageCollection()
    while True:
        try:
            method, args = conn.recv()
        except (EOFError, OSError):
            return  # the server is gone (even SIGKILL closes the pipe)
        if method == "exit":
            return
        try:
            conn.send((True, getattr(core, method)(*args)))
        except Exception as exc:  # reported to the server, which logs it
            conn.send((False, f"{type(exc).__name__}: {exc}"))
        garbage.collect_if_due()


class SpacedGarbageCollection:
    """Python's garbage collection in the detector process, by cost rather than count.

    The automatic collector runs by allocation counts, and a feed allocates a few
    objects per span that live until the feed ends: each feed promoted them to the
    oldest generation and set off full collections over the whole detector state,
    which doubled the detectors' CPU per span once the state held ~300 000 spans'
    worth. Reference counting frees nearly all garbage (a full collection after a
    feed finds no cycles), so the cycle collector runs between requests instead, at
    most 1/COST_SHARE of the time.

    Even so, each collection went over the whole heap again (~8% of the process's CPU
    under load): the detector state and the imported modules, which live on. So the
    survivors of a collection are frozen (`gc.freeze`) and the next one looks only at
    what was allocated since. Old objects can still end up in a cycle: a full
    collection, unfrozen, runs every `full_every_s` and once the frozen heap has
    doubled, so such garbage stays at most as large as what lives. Counting the frozen
    heap walks it (~16 ms for 2 M objects, a tenth of a full collection), so that is
    checked every `size_check_every_s`, not at each collection.
    """

    def __init__(
        self,
        full_every_s: float = 600.0,
        size_check_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        gc.disable()
        self._spacing = CostSpacing(clock)
        self._clock = clock
        self._full_every_s = full_every_s
        self._size_check_every_s = size_check_every_s
        self._last_full_at = -math.inf  # the first collection is a full one
        self._last_size_check_at = clock()
        self._frozen_after_full = 0

    def collect_if_due(self) -> None:
        if not self._spacing.due():
            return
        with self._spacing.timed():
            full = self._full_due()
            if full:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
            if full:
                self._frozen_after_full = gc.get_freeze_count()
                self._last_full_at = self._clock()

    def _full_due(self) -> bool:
        now = self._clock()
        if now - self._last_full_at >= self._full_every_s:
            return True
        if now - self._last_size_check_at < self._size_check_every_s:
            return False
        self._last_size_check_at = now
        return gc.get_freeze_count() > 2 * self._frozen_after_full

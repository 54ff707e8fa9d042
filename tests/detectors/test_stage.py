"""The detector stage of `serve` with its core in a real child process.

Segments are real log segment files; findings go to a small in-memory row sink (the
store's one method the stage uses). The child process is killed to prove a restart
loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from detectors import FINDING_COLUMNS, DetectorStage, InlineCore, ProcessCore
from detectors._findings import Finding
from ingest import Segment
from tests.otlp import make_request, make_span
from tests.segments import write_segment

TRACE = bytes.fromhex("5e" * 16)
CONFIG = {"runaway_loop": {"max_repeats": 3}}


class RowSink:
    """Keeps inserted finding rows; can refuse them, like a store that is down."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.refusing = False

    def insert_rows(
        self, table: str, column_names: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if self.refusing:
            raise ConnectionError("store is down")
        assert table == "findings"
        assert list(column_names) == list(FINDING_COLUMNS)
        self.rows += [dict(zip(column_names, row, strict=True)) for row in rows]


def loop_segment(directory: Path, number: int, calls: int) -> Segment:
    """A segment of `calls` identical tool calls in one run (ids unique per segment)."""
    spans = [
        make_span(
            "execute_tool search",
            trace_id=TRACE,
            span_id=bytes([number, n + 1, 0, 0, 0, 0, 0, 1]),
            parent=bytes.fromhex("00000000000000aa"),
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.arguments": '{"q": "same"}',
            },
        )
        for n in range(calls)
    ]
    path = write_segment(directory / f"{number:020d}.seg", [make_request(spans)])
    return Segment(path, number, calls, path.stat().st_size, f"wal-1-{number}", time.time())


def counts(sink: RowSink) -> list[int]:
    return [json.loads(row["Evidence"])["count"] for row in sink.rows]


@pytest.mark.parametrize("core_kind", ["process", "inline"])
def test_findings_reach_the_store_and_the_state_survives_a_new_stage(
    tmp_path: Path, core_kind: str
) -> None:
    state = tmp_path / "state.json"

    def core() -> ProcessCore | InlineCore:
        return ProcessCore(CONFIG, state) if core_kind == "process" else InlineCore(CONFIG, state)

    async def scenario() -> RowSink:
        sink = RowSink()
        stage = DetectorStage(core(), sink)
        await stage.start()
        await stage.consume(loop_segment(tmp_path, 1, 2))
        await stage.consume(loop_segment(tmp_path, 2, 1))  # the third identical call
        await stage.shutdown()
        assert counts(sink) == [3]

        again = DetectorStage(core(), sink)  # a restart: the run's count is remembered
        await again.start()
        await again.consume(loop_segment(tmp_path, 2, 1))  # a replay: skipped
        await again.consume(loop_segment(tmp_path, 3, 3))  # 3 + 3 = 6: doubled
        await again.shutdown()
        return sink

    sink = asyncio.run(scenario())
    assert counts(sink) == [3, 6]
    assert len({row["Id"] for row in sink.rows}) == 1


def test_a_killed_detector_process_is_restarted_and_fed_what_it_lost(tmp_path: Path) -> None:
    async def scenario() -> RowSink:
        sink = RowSink()
        core = ProcessCore(CONFIG, tmp_path / "state.json")
        stage = DetectorStage(core, sink)
        await stage.start()
        await stage.checkpoint()
        await stage.consume(loop_segment(tmp_path, 1, 2))  # fed, not saved yet
        os.kill(core._process.pid, signal.SIGKILL)
        core._process.join(10)
        await stage.consume(loop_segment(tmp_path, 2, 1))  # the new process gets 1 again
        await stage.shutdown()
        return sink

    sink = asyncio.run(scenario())
    assert counts(sink) == [3]


def test_a_process_core_started_early_is_started_once_and_stopped_once(tmp_path: Path) -> None:
    """`serve` starts the core before the store opens, then the stage starts it again."""

    async def scenario() -> None:
        core = ProcessCore(CONFIG, tmp_path / "state.json")
        await core.start()
        process = core._process
        stage = DetectorStage(core, RowSink())
        await stage.start()
        assert core._process is process
        await stage.consume(loop_segment(tmp_path, 1, 3))
        await stage.shutdown()
        assert not process.is_alive()
        await core.stop()  # serve's own stop, after the stage's: nothing left to do

    asyncio.run(scenario())


def test_findings_the_store_refuses_are_kept_and_written_later(tmp_path: Path) -> None:
    async def scenario() -> RowSink:
        sink = RowSink()
        sink.refusing = True
        stage = DetectorStage(InlineCore(CONFIG, tmp_path / "state.json"), sink)
        await stage.start()
        await stage.consume(loop_segment(tmp_path, 1, 3))
        await stage.shutdown()  # saved with the state, not lost
        assert sink.rows == []

        sink.refusing = False
        again = DetectorStage(InlineCore(CONFIG, tmp_path / "state.json"), sink)
        await again.start()
        await again.checkpoint()
        await again.shutdown()
        return sink

    sink = asyncio.run(scenario())
    assert counts(sink) == [3]


class SlowSavingCore:
    """A real inline core whose saves take one second of a fake clock, and whose next
    tick can be made to publish a finding (as a zombie_run tick would)."""

    def __init__(self, state_path: Path) -> None:
        self.inner = InlineCore(CONFIG, state_path)
        self.now_s = 1000.0
        self.saves = 0
        self.tick_finding: dict[str, Any] | None = None

    def clock(self) -> float:
        return self.now_s

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def call(self, method: str, *args: Any) -> Any:
        result = await self.inner.call(method, *args)
        if method == "save":
            self.saves += 1
            self.now_s += 1.0
        if method == "tick" and self.tick_finding is not None:
            result, self.tick_finding = [self.tick_finding], None
        return result


def silent_run_finding(number: int) -> dict[str, Any]:
    return Finding(
        id=f"zombie-{number}",
        kind="zombie_run",
        tenant="default",
        severity="critical",
        summary="run silent",
        opened_at_ns=number,
        updated_at_ns=number,
    ).as_dict()


def test_a_tick_finding_is_saved_at_once_only_while_saves_are_cheap_or_the_store_refuses(
    tmp_path: Path,
) -> None:
    """Saving a big state takes seconds; ticks come every second. A tick's finding that
    the store took is saved once a save is due (20 times its last duration after it)."""

    async def scenario() -> None:
        sink = RowSink()
        core = SlowSavingCore(tmp_path / "state.json")
        stage = DetectorStage(core, sink, clock=core.clock)
        await stage.start()
        await stage.checkpoint()  # took 1 s: the next is due 20 s after it
        assert core.saves == 1

        core.tick_finding = silent_run_finding(1)
        await stage.tick(1)
        assert [row["Id"] for row in sink.rows] == ["zombie-1"]  # in the store at once
        assert core.saves == 1  # the state that opened it: not yet
        core.now_s += 18.0
        await stage.tick(2)
        assert core.saves == 1
        core.now_s += 2.0
        await stage.tick(3)  # no new finding, but the last one is still unsaved
        assert core.saves == 2
        await stage.tick(4)
        assert core.saves == 2  # nothing new to save

        sink.refusing = True
        core.tick_finding = silent_run_finding(2)
        await stage.tick(5)
        assert core.saves == 3  # only the saved state has it: saved at once
        state = json.loads((tmp_path / "state.json").read_text())
        assert [finding["id"] for finding in state["unwritten"]] == ["zombie-2"]
        await stage.shutdown()

    asyncio.run(scenario())

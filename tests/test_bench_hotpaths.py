"""bench/hotpaths.py runs end to end on a tiny load and reports every stage."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.ingest import DEFAULT_LOAD_TOOL

pytestmark = pytest.mark.skipif(
    not DEFAULT_LOAD_TOOL.exists(), reason="the shared load generator is not next to the repo"
)


def test_every_stage_is_measured_and_every_optional_experiment_too() -> None:
    command = [sys.executable, "-m", "bench.hotpaths", "--requests", "2"]
    command += ["--spans-per-request", "20", "--repeat", "1", "--insert-breakdown"]
    command += ["--group-insert", "2", "--columnar-floor"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)

    report = json.loads(out.stdout)

    figures = report["cpu_us_per_span"]
    assert report["spans"] == 40
    assert {"receive", "detector_read", "flat_rows", "insert", "insert_fixed_ms"} <= set(figures)
    assert {"detector_zombie_run", "detector_cost_spike"} <= set(figures)
    assert {f"breakdown_{s}" for s in ("read_rows", "select", "insert")} <= set(figures)
    assert {"group_insert_one_each", "group_insert_all_in_one"} <= set(figures)
    assert figures["columnar_floor_arrow_insert"] > 0
    assert all(value >= 0 for value in figures.values())
    assert figures["receive"] > 0
    assert figures["insert"] > 0

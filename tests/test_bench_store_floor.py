"""bench/store_floor.py inserts, lets the merges settle, and reports the store's cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.ingest import DEFAULT_LOAD_TOOL

pytestmark = pytest.mark.skipif(
    not DEFAULT_LOAD_TOOL.exists(), reason="the shared load generator is not next to the repo"
)


def test_the_store_cost_and_the_ceiling_it_sets_are_reported() -> None:
    command = [sys.executable, "-m", "bench.store_floor", "--segments", "6"]
    command += ["--requests", "2", "--spans-per-request", "20"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)

    report = json.loads(out.stdout)

    assert report["spans"] == 240
    assert report["segments"] == 6
    assert 0 < report["insert_us_per_span"] <= report["store_us_per_span"]
    # Six small parts in one partition: the merge selector joins some of them.
    assert report["rows_merged_per_row"] > 0
    assert 1 <= report["active_parts"] < 6
    assert report["ceiling_spans_per_s_two_cores"] == round(2e6 / report["store_us_per_span"])

"""bench/behaviour_check.py compares both checks in every scenario."""

from __future__ import annotations

import subprocess
import sys

from bench.behaviour_check import SCENARIOS


def test_both_checks_are_measured_in_every_scenario() -> None:
    command = [sys.executable, "-m", "bench.behaviour_check", "--samples", "2"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)

    rows = [line.strip("|").split("|") for line in out.stdout.splitlines()[2:]]

    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        (scenario, method)
        for scenario in SCENARIOS
        for method in ("out of bag (now)", "3-fold CV (before)")
    ]
    for row in rows:
        mean, p95, top = (float(cell) for cell in row[2:5])
        assert 0.0 <= mean <= top <= 1.0
        assert 0.0 <= p95 <= top
        assert float(row[6]) > 0  # ms per check

"""Shared fixtures: a clean environment, and a real agentwatch running in-process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import AgentwatchThread, make_settings


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AGENTWATCH_* or OTEL_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("AGENTWATCH_", "OTEL_")):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def agentwatch(tmp_path: Path) -> Iterator[AgentwatchThread]:
    """agentwatch on free loopback ports with embedded chDB in a temp dir."""
    with AgentwatchThread(make_settings(tmp_path)) as running:
        yield running

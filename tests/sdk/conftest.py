"""Fixtures for the agentwatch_sdk tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agentwatch_sdk import configure

from tests.sdk.support import FakeClock


@pytest.fixture(autouse=True)
def _default_configuration() -> Iterator[None]:
    """Each test configures the SDK itself; none leaks its provider or clock."""
    configure()
    yield
    configure()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()

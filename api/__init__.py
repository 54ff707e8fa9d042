"""API: the FastAPI query API (traces, findings, time series), health and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from api._app import create_app
    from api._deps import ApiContext, QueryStore

__all__ = ["ApiContext", "QueryStore", "create_app"]


def __getattr__(name: str) -> object:
    """The app (FastAPI, the store, the detectors' helpers) loads only when asked for:
    the CLI's commands import `api._time` without it."""
    if name == "create_app":
        from api._app import create_app

        return create_app
    if name in ("ApiContext", "QueryStore"):
        from api import _deps

        return getattr(_deps, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""API: the FastAPI query API (traces, findings, time series), health and metrics."""

from api._app import create_app
from api._deps import ApiContext, QueryStore

__all__ = ["ApiContext", "QueryStore", "create_app"]

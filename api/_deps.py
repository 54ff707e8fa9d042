"""FastAPI dependencies: the store, the caller's tenant (bearer token) and readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Request


class QueryStore(Protocol):
    def query(self, sql: str, parameters: Any = None) -> list[dict[str, Any]]: ...

    def table(self, name: str) -> str: ...

    def ping(self) -> bool: ...


@dataclass
class ApiContext:
    """What the API needs from the running process, handed over by `serve`."""

    store: QueryStore
    api_tokens: dict[str, str] = field(default_factory=dict)
    # Extra readiness checks; each returns the problems it sees (none: ready).
    readiness_checks: list[Callable[[], list[str]]] = field(default_factory=list)
    # The alert delivery log (an Outbox), when alerting is configured.
    alerts: Any = None
    # The kill switch and audit trail (api._control.ControlStore).
    control: Any = None
    # The agents' job descriptions as loaded now (a detectors JobRegistry, or None).
    jobs: Callable[[], Any] = lambda: None
    # Make a logs request durable, like the OTLP receivers do (POST /scores).
    accept_logs: Callable[[str, Any, bytes | None], Awaitable[int]] | None = None


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


def get_store(context: Annotated[ApiContext, Depends(get_context)]) -> QueryStore:
    return context.store


def get_tenant(
    request: Request, context: Annotated[ApiContext, Depends(get_context)]
) -> str | None:
    """The tenant whose data the caller may read; None (everything) on an open API."""
    if not context.api_tokens:
        return None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    tenant = context.api_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if tenant is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return tenant


ContextDep = Annotated[ApiContext, Depends(get_context)]
StoreDep = Annotated[QueryStore, Depends(get_store)]
TenantDep = Annotated[str | None, Depends(get_tenant)]

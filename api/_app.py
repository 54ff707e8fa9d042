"""The FastAPI application: health, readiness, Prometheus metrics and the query API."""

from __future__ import annotations

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api._agents import router as agents_router
from api._alerts import router as alerts_router
from api._control import router as control_router
from api._deps import ApiContext, ContextDep
from api._findings import router as findings_router
from api._logs import router as logs_router
from api._scores import router as scores_router
from api._timeseries import router as timeseries_router
from api._tools import router as tools_router
from api._traces import router as traces_router


def create_app(context: ApiContext, registry: CollectorRegistry | None = None) -> FastAPI:
    app = FastAPI(
        title="agentwatch",
        summary="Query API for agent traces, agents, tools, findings and time series",
        version="0.1.0",
    )
    app.state.context = context
    metrics_registry = registry or CollectorRegistry()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(ctx: ContextDep) -> JSONResponse:
        problems = [problem for check in ctx.readiness_checks for problem in check()]
        if not ctx.store.ping():
            problems.append("store is not answering")
        if problems:
            return JSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(metrics_registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(traces_router)
    app.include_router(findings_router)
    app.include_router(logs_router)
    # Before the agents router: its /agents/{name:path} would take .../control.
    app.include_router(control_router)
    app.include_router(agents_router)
    app.include_router(tools_router)
    app.include_router(timeseries_router)
    app.include_router(alerts_router)
    app.include_router(scores_router)
    return app

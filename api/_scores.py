"""`POST /api/v1/scores`: an evaluation result or a human label for a trace or span.

The score becomes an OTLP `gen_ai.evaluation.result` log record and goes the way every
log record goes — the write-ahead log (acknowledged once durable), `otel_logs`, and
the detectors, where quality_drift takes it like any evaluation. So a reviewer's
"bad answer" moves the same series an automated judge does.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from pydantic import BaseModel, Field, model_validator

from api._deps import ContextDep, TenantDep
from ingest import OverloadedError

router = APIRouter(prefix="/api/v1", tags=["scores"])

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-fA-F]{16}$")
SERVICE = "agentwatch-feedback"


class ScoreIn(BaseModel):
    trace_id: str = Field(description="32 hex characters")
    span_id: str | None = Field(default=None, description="16 hex characters")
    name: str = Field(min_length=1, max_length=200, description="the evaluation's name")
    score: float | None = Field(default=None, allow_inf_nan=False)
    label: str | None = Field(default=None, max_length=200)
    explanation: str | None = Field(default=None, max_length=10_000)
    agent: str | None = Field(default=None, max_length=200, description="else the trace's")
    source: str = Field(default="human", max_length=100, description="human, judge, …")

    @model_validator(mode="after")
    def _check(self) -> ScoreIn:
        if not _TRACE_ID.match(self.trace_id):
            raise ValueError("trace_id must be 32 hex characters")
        if self.span_id is not None and not _SPAN_ID.match(self.span_id):
            raise ValueError("span_id must be 16 hex characters")
        if self.score is None and not self.label:
            raise ValueError("give a score, a label, or both")
        return self


class ScoreAccepted(BaseModel):
    accepted: bool
    trace_id: str


@router.post("/scores", response_model=ScoreAccepted, status_code=202)
async def post_score(
    body: ScoreIn, context: ContextDep, tenant: TenantDep, response: Response
) -> ScoreAccepted:
    """Record a score; 202 once it is durable (503 with Retry-After when ingest is full)."""
    if context.accept_logs is None:
        raise HTTPException(status_code=503, detail="scores cannot be accepted here")
    try:
        await context.accept_logs(tenant or "default", _as_logs_request(body), None)
    except OverloadedError as exc:
        raise HTTPException(
            status_code=503,
            detail=str(exc),
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        ) from None
    if context.control is not None:
        context.control.record(
            tenant or "default",
            body.source,
            "score",
            body.trace_id.lower(),
            {"name": body.name, "score": body.score, "label": body.label},
        )
    return ScoreAccepted(accepted=True, trace_id=body.trace_id.lower())


def _value(value: Any) -> AnyValue:
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def _as_logs_request(body: ScoreIn) -> ExportLogsServiceRequest:
    attributes = {
        "gen_ai.evaluation.name": body.name,
        "gen_ai.evaluation.score.value": body.score,
        "gen_ai.evaluation.score.label": body.label,
        "gen_ai.evaluation.explanation": body.explanation,
        "gen_ai.agent.name": body.agent,
        "agentwatch.score.source": body.source,
    }
    record = LogRecord(
        time_unix_nano=time.time_ns(),
        observed_time_unix_nano=time.time_ns(),
        event_name="gen_ai.evaluation.result",
        trace_id=bytes.fromhex(body.trace_id),
        span_id=bytes.fromhex(body.span_id) if body.span_id else b"",
        attributes=[
            KeyValue(key=key, value=_value(value))
            for key, value in attributes.items()
            if value is not None
        ],
    )
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value=SERVICE))]
    )
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=[record])])
        ]
    )

"""What both receivers do with a decoded request, and the outcome they translate.

The receivers own their wire format (gRPC status codes, HTTP status codes); this
module owns the meaning: authenticate, reject invalid spans (partial success), hand
the rest to the pipeline, and report what happened as one `ExportOutcome`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ingest import IngestMetrics, OverloadedError, drop_invalid_spans, span_count

# The pipeline's entry point: make a validated request durable for a tenant (given its
# wire bytes when they still match it), or raise OverloadedError. The receivers know
# nothing else about what happens next.
AcceptFn = Callable[[str, ExportTraceServiceRequest, bytes | None], Awaitable[int]]


class Failure(enum.Enum):
    """Why an export was refused; each receiver maps these to its own status codes."""

    UNAUTHENTICATED = "unauthenticated"
    UNDECODABLE = "undecodable"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    OVERLOADED = "overloaded"


@dataclass(frozen=True, slots=True)
class ExportOutcome:
    failure: Failure | None = None
    message: str = ""
    rejected_spans: int = 0
    retry_after_s: float = 0.0


class TokenAuthenticator:
    """Bearer token -> tenant. With no tokens configured every caller is `default`."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        self._tokens = dict(tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def tenant_for(self, authorization: str | None) -> str | None:
        if not self._tokens:
            return "default"
        if not authorization:
            return None
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._tokens.get(token.strip())


class ExportHandler:
    """The shared core of the gRPC and HTTP receivers."""

    def __init__(
        self, accept: AcceptFn, authenticator: TokenAuthenticator, metrics: IngestMetrics
    ) -> None:
        self._accept = accept
        self.authenticator = authenticator
        self._metrics = metrics

    def fail(self, transport: str, failure: Failure, message: str) -> ExportOutcome:
        self._metrics.requests_failed.labels(transport, failure.value).inc()
        return ExportOutcome(failure=failure, message=message)

    async def export(
        self,
        transport: str,
        tenant: str,
        request: ExportTraceServiceRequest,
        raw: bytes | None = None,
    ) -> ExportOutcome:
        """Validate, then accept; `raw` is the request's protobuf bytes when available."""
        received = span_count(request)
        self._metrics.spans_received.labels(transport).inc(received)
        rejected, message = drop_invalid_spans(request)
        if rejected:
            self._metrics.spans_rejected.labels(transport, "invalid_id").inc(rejected)
        try:
            accepted = await self._accept(tenant, request, None if rejected else raw)
        except OverloadedError as exc:
            self._metrics.spans_rejected.labels(transport, "overloaded").inc(received - rejected)
            self._metrics.requests_failed.labels(transport, Failure.OVERLOADED.value).inc()
            return ExportOutcome(
                failure=Failure.OVERLOADED, message=str(exc), retry_after_s=exc.retry_after_s
            )
        self._metrics.spans_accepted.labels(transport).inc(accepted)
        return ExportOutcome(rejected_spans=rejected, message=message)

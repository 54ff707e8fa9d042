"""What both receivers do with a decoded request, and the outcome they translate.

The receivers own their wire format (gRPC status codes, HTTP status codes); this
module owns the meaning: authenticate, reject invalid spans (partial success), hand
the rest to the pipeline, and report what happened as one `ExportOutcome`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from collector._signals import TRACES, Signal
from ingest import IngestMetrics, OverloadedError

# The pipeline's entry point for one signal: make a validated request durable for a
# tenant (given its wire bytes when they still match it), or raise OverloadedError.
# The receivers know nothing else about what happens next.
AcceptFn = Callable[[str, Any, bytes | None], Awaitable[int]]


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
    rejected: int = 0  # items (spans, log records) refused: partial success
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
    """The shared core of the gRPC and HTTP receivers, for one signal."""

    def __init__(
        self,
        accept: AcceptFn,
        authenticator: TokenAuthenticator,
        metrics: IngestMetrics,
        signal: Signal = TRACES,
    ) -> None:
        self._accept = accept
        self.authenticator = authenticator
        self.signal = signal
        self._metrics = metrics
        if signal is TRACES:
            self._received = metrics.spans_received
            self._accepted = metrics.spans_accepted
            self._rejected = metrics.spans_rejected
        else:
            self._received = metrics.log_records_received
            self._accepted = metrics.log_records_accepted
            self._rejected = metrics.log_records_rejected

    def fail(self, transport: str, failure: Failure, message: str) -> ExportOutcome:
        self._metrics.requests_failed.labels(transport, failure.value).inc()
        return ExportOutcome(failure=failure, message=message)

    async def export(
        self,
        transport: str,
        tenant: str,
        request: Any,
        raw: bytes | None = None,
    ) -> ExportOutcome:
        """Validate, then accept; `raw` is the request's protobuf bytes when available."""
        received = self.signal.count(request)
        self._received.labels(transport).inc(received)
        rejected, message = self.signal.drop_invalid(request)
        if rejected:
            self._rejected.labels(transport, "invalid_id").inc(rejected)
        try:
            accepted = await self._accept(tenant, request, None if rejected else raw)
        except OverloadedError as exc:
            self._rejected.labels(transport, "overloaded").inc(received - rejected)
            self._metrics.requests_failed.labels(transport, Failure.OVERLOADED.value).inc()
            return ExportOutcome(
                failure=Failure.OVERLOADED, message=str(exc), retry_after_s=exc.retry_after_s
            )
        self._accepted.labels(transport).inc(accepted)
        return ExportOutcome(rejected=rejected, message=message)

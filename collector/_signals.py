"""What differs between the OTLP signals agentwatch receives: traces and logs.

Everything else — authentication, status codes, body limits, durability — is shared,
so each receiver serves every signal from one table of these descriptors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsPartialSuccess,
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ingest import drop_invalid_log_records, drop_invalid_spans, log_record_count, span_count


@dataclass(frozen=True)
class Signal:
    name: str  # "traces" / "logs"
    items: str  # what the request carries, for messages: "spans" / "log records"
    grpc_service: str
    http_path: str
    request_type: type[Any]
    response_type: type[Any]
    partial_success_type: type[Any]
    rejected_field: str  # the partial-success count field
    count: Callable[[Any], int]
    drop_invalid: Callable[[Any], tuple[int, str]]
    # OTLP JSON path to the items whose ids are hex (not base64): containers, then items.
    json_path: tuple[tuple[str, str], ...]

    def response(self, rejected: int = 0, message: str = "") -> Any:
        response = self.response_type()
        if rejected:
            counts = {self.rejected_field: rejected, "error_message": message}
            response.partial_success.CopyFrom(self.partial_success_type(**counts))
        return response


TRACES = Signal(
    name="traces",
    items="spans",
    grpc_service="opentelemetry.proto.collector.trace.v1.TraceService",
    http_path="/v1/traces",
    request_type=ExportTraceServiceRequest,
    response_type=ExportTraceServiceResponse,
    partial_success_type=ExportTracePartialSuccess,
    rejected_field="rejected_spans",
    count=span_count,
    drop_invalid=drop_invalid_spans,
    json_path=(
        ("resourceSpans", "resource_spans"),
        ("scopeSpans", "scope_spans"),
        ("spans", "spans"),
    ),
)

LOGS = Signal(
    name="logs",
    items="log records",
    grpc_service="opentelemetry.proto.collector.logs.v1.LogsService",
    http_path="/v1/logs",
    request_type=ExportLogsServiceRequest,
    response_type=ExportLogsServiceResponse,
    partial_success_type=ExportLogsPartialSuccess,
    rejected_field="rejected_log_records",
    count=log_record_count,
    drop_invalid=drop_invalid_log_records,
    json_path=(
        ("resourceLogs", "resource_logs"),
        ("scopeLogs", "scope_logs"),
        ("logRecords", "log_records"),
    ),
)

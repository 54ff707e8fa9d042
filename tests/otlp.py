"""Building OTLP requests for tests, and sending them raw over gRPC and HTTP."""

from __future__ import annotations

import base64
import gzip
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.harness import http

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def kv(key: str, value: str | int | float) -> KeyValue:
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def make_span(
    name: str = "span",
    trace_id: bytes | None = None,
    span_id: bytes | None = None,
    parent: bytes = b"",
    attributes: Mapping[str, str | int] | None = None,
) -> Span:
    return Span(
        trace_id=secrets.token_bytes(16) if trace_id is None else trace_id,
        span_id=secrets.token_bytes(8) if span_id is None else span_id,
        parent_span_id=parent,
        name=name,
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=1_795_500_000_000_000_000,
        end_time_unix_nano=1_795_500_000_250_000_000,
        attributes=[kv(k, v) for k, v in (attributes or {}).items()],
    )


def make_request(spans: list[Span], service: str = "svc") -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[kv("service.name", service)]),
                scope_spans=[ScopeSpans(spans=spans)],
            )
        ]
    )


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """proto3 JSON with OTLP's one difference: ids in hex, not base64."""
    document = json_format.MessageToDict(request)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document).encode()


@dataclass
class ExportResult:
    """A transport-neutral view of an export answer."""

    ok: bool
    grpc_code: grpc.StatusCode | None = None
    http_status: int | None = None
    rejected_spans: int = 0
    error_message: str = ""
    retry_delay_s: float | None = None  # RetryInfo (gRPC) or Retry-After (HTTP)
    status_body: status_pb2.Status | None = None
    headers: dict[str, str] | None = None


def grpc_export(
    target: str,
    body: bytes,
    gzipped: bool = False,
    token: str | None = None,
) -> ExportResult:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    compression = grpc.Compression.Gzip if gzipped else grpc.Compression.NoCompression
    with grpc.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        call = channel.unary_unary(EXPORT_METHOD)  # raw bytes in and out
        try:
            raw, rpc = call.with_call(body, metadata=metadata, compression=compression, timeout=10)
        except grpc.RpcError as error:
            return _grpc_failure(error)
    response = ExportTraceServiceResponse.FromString(raw)
    return ExportResult(
        ok=True,
        grpc_code=rpc.code(),
        rejected_spans=response.partial_success.rejected_spans,
        error_message=response.partial_success.error_message,
    )


def _grpc_failure(error: Any) -> ExportResult:
    retry_delay = None
    status_body = None
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status_body = status_pb2.Status.FromString(value)
            for detail in status_body.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    retry_delay = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return ExportResult(
        ok=False,
        grpc_code=error.code(),
        error_message=error.details() or "",
        retry_delay_s=retry_delay,
        status_body=status_body,
    )


def http_export(
    base_url: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    gzipped: bool = False,
    token: str | None = None,
) -> ExportResult:
    headers = {"content-type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = http().post(f"{base_url}/v1/traces", content=body, headers=headers, timeout=10)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    result = ExportResult(
        ok=response.status_code == 200,
        http_status=response.status_code,
        headers=dict(response.headers),
    )
    if "retry-after" in response.headers:
        result.retry_delay_s = float(response.headers["retry-after"])
    if response.status_code == 200:
        if is_json:
            parsed = json_format.Parse(response.content, ExportTraceServiceResponse())
        else:
            parsed = ExportTraceServiceResponse.FromString(response.content)
        result.rejected_spans = parsed.partial_success.rejected_spans
        result.error_message = parsed.partial_success.error_message
    elif response.content and response.headers.get("content-type", "").startswith(
        ("application/json", "application/x-protobuf")
    ):
        status = status_pb2.Status()
        if is_json:
            json_format.Parse(response.content, status)
        else:
            status.ParseFromString(response.content)
        result.status_body = status
        result.error_message = status.message
    return result

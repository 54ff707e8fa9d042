"""OTLP logs end to end: the SDK's log exporters, raw OTLP JSON and protobuf, tenancy,
the status-code table, and log records sharing write-ahead-log segments with spans
through a store retry and a kill -9.

One chDB per process: one in-process agentwatch serves the module's tests, and the
kill -9 test runs agentwatch as a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
    OTLPLogExporter as GrpcLogExporter,
)
from opentelemetry.exporter.otlp.proto.http._log_exporter import (
    OTLPLogExporter as HttpLogExporter,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import (
    SEVERITY_NUMBER_INFO,
    ResourceLogs,
    ScopeLogs,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as ProtoLogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    LogRecordExporter,
    LogRecordExportResult,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

from agentwatch._http_server import HttpServer, bind_socket
from collector import LOGS, TRACES, ExportHandler, GrpcReceiver, HttpReceiver, TokenAuthenticator
from examples.send_agent_trace import make_exporter, send_agent_run
from ingest import IngestMetrics, OverloadedError, log_record_count, span_count
from tests.harness import AgentwatchProcess, AgentwatchThread, http, make_settings, wait_for
from tests.otlp import grpc_export, kv, make_request, make_span
from tests.test_durability import FaultInjectingStore

EVENT = "gen_ai.evaluation.result"
TRANSIENT_FAILURES = 'agentwatch_store_write_failures_total{kind="transient"}'
INSERTS = "agentwatch_store_write_seconds_count"  # one per segment stored
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
INGEST_TOKENS = {"ingest-a": "acme", "ingest-b": "globex"}
API_TOKENS = {"read-a": "acme", "read-b": "globex"}


# -- building and sending logs ----------------------------------------------------------


def random_trace_id() -> bytes:
    """16 bytes with a leading zero byte and hex letters: padding and case both show."""
    return b"\x00\xab" + secrets.token_bytes(14)


def proto_record(
    body: str,
    trace_id: bytes = b"",
    span_id: bytes = b"",
) -> ProtoLogRecord:
    return ProtoLogRecord(
        time_unix_nano=time.time_ns(),
        severity_number=SEVERITY_NUMBER_INFO,
        severity_text="INFO",
        body=AnyValue(string_value=body),
        trace_id=trace_id,
        span_id=span_id,
        event_name=EVENT,
    )


def logs_request(
    records: Sequence[ProtoLogRecord], service: str = "svc"
) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(
                resource=ProtoResource(attributes=[kv("service.name", service)]),
                scope_logs=[
                    ScopeLogs(scope=InstrumentationScope(name="tests"), log_records=records)
                ],
            )
        ]
    )


def to_otlp_json(request: ExportLogsServiceRequest) -> bytes:
    """proto3 JSON with OTLP's one difference: ids in hex, not base64."""
    document = json_format.MessageToDict(request)
    for resource_logs in document.get("resourceLogs", []):
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                for key in ("traceId", "spanId"):
                    if key in record:
                        record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(document).encode()


@dataclass
class Answer:
    """A transport-neutral view of a logs export answer."""

    ok: bool
    grpc_code: grpc.StatusCode | None = None
    http_status: int | None = None
    rejected: int = 0
    error_message: str = ""
    retry_delay_s: float | None = None  # RetryInfo (gRPC) or Retry-After (HTTP)
    status_body: status_pb2.Status | None = None
    headers: dict[str, str] = field(default_factory=dict)


def grpc_logs_export(
    target: str, body: bytes, gzipped: bool = False, token: str | None = None
) -> Answer:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    compression = grpc.Compression.Gzip if gzipped else grpc.Compression.NoCompression
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(LOGS_METHOD)  # raw bytes in and out
        try:
            raw, rpc = call.with_call(body, metadata=metadata, compression=compression, timeout=10)
        except grpc.RpcError as error:
            return _grpc_failure(error)
    response = ExportLogsServiceResponse.FromString(raw)
    return Answer(
        ok=True,
        grpc_code=rpc.code(),
        rejected=response.partial_success.rejected_log_records,
        error_message=response.partial_success.error_message,
    )


def _grpc_failure(error: Any) -> Answer:
    answer = Answer(ok=False, grpc_code=error.code(), error_message=error.details() or "")
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            answer.status_body = status_pb2.Status.FromString(value)
            for detail in answer.status_body.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    answer.retry_delay_s = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return answer


def http_logs_export(
    base_url: str,
    body: bytes,
    content_type: str = "application/x-protobuf",
    gzipped: bool = False,
    token: str | None = None,
) -> Answer:
    headers = {"content-type": content_type}
    if gzipped:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = http().post(f"{base_url}/v1/logs", content=body, headers=headers, timeout=10)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    answer = Answer(
        ok=response.status_code == 200,
        http_status=response.status_code,
        headers=dict(response.headers),
    )
    if "retry-after" in response.headers:
        answer.retry_delay_s = float(response.headers["retry-after"])
    if response.status_code == 200:
        parsed = ExportLogsServiceResponse()
        if is_json:
            json_format.Parse(response.content, parsed)
        else:
            parsed.ParseFromString(response.content)
        answer.rejected = parsed.partial_success.rejected_log_records
        answer.error_message = parsed.partial_success.error_message
    elif response.headers.get("content-type", "").startswith(
        ("application/json", "application/x-protobuf")
    ):
        status = status_pb2.Status()
        if is_json:
            json_format.Parse(response.content, status)
        else:
            status.ParseFromString(response.content)
        answer.status_body = status
        answer.error_message = status.message
    return answer


def export(
    endpoints: dict[str, str],
    transport: str,
    request_or_body: ExportLogsServiceRequest | bytes,
    gzipped: bool = False,
    token: str | None = None,
) -> Answer:
    """Send over "grpc", "http-protobuf" or "http-json"; `endpoints` as endpoints.json."""
    if isinstance(request_or_body, bytes):
        body = request_or_body
    elif transport == "http-json":
        body = to_otlp_json(request_or_body)
    else:
        body = request_or_body.SerializeToString()
    if transport == "grpc":
        return grpc_logs_export(endpoints["otlp_grpc"], body, gzipped, token)
    content_type = "application/json" if transport == "http-json" else "application/x-protobuf"
    return http_logs_export(endpoints["otlp_http"], body, content_type, gzipped, token)


class RecordingExporter(LogRecordExporter):
    """The real OTLP exporter; the result of every export is kept for the test."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.results: list[LogRecordExportResult] = []

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = self.inner.export(batch)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def sdk_exporter(transport: str, endpoints: dict[str, str], token: str | None) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else None
    if transport == "grpc":
        return GrpcLogExporter(endpoint=endpoints["otlp_grpc"], insecure=True, headers=headers)
    return HttpLogExporter(endpoint=f"{endpoints['otlp_http']}/v1/logs", headers=headers)


@dataclass(frozen=True)
class Emitted:
    trace_id: str
    span_ids: list[str]
    timestamps: list[int]
    results: list[LogRecordExportResult]


def in_span(trace_id: int, span_id: int) -> Context:
    """The context an evaluator runs in: inside the span it evaluates."""
    span = SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(1))
    return set_span_in_context(NonRecordingSpan(span))


def emit_evaluations(
    exporter: LogRecordExporter,
    trace_id: int,
    count: int = 3,
    service: str = "eval-service",
) -> Emitted:
    """One `gen_ai.evaluation.result` log record per span, the way an evaluator emits them."""
    recording = RecordingExporter(exporter)
    provider = LoggerProvider(resource=Resource.create({"service.name": service, "team": "qa"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(recording))
    logger = provider.get_logger("agentwatch.tests.evaluator", "1.0")
    span_ids = [int.from_bytes(secrets.token_bytes(8)) | 1 for _ in range(count)]
    timestamps = []
    for i, span_id in enumerate(span_ids):
        timestamps.append(time.time_ns())
        logger.emit(
            LogRecord(
                timestamp=timestamps[-1],
                event_name=EVENT,
                body=f"answer {i} cites the wrong invoice",
                attributes={
                    "gen_ai.evaluation.name": "faithfulness",
                    "gen_ai.evaluation.score.value": 0.25 + i,
                    "gen_ai.evaluation.score.label": "fail" if i else "pass",
                    "attempt": i,
                    "passed": i == 0,
                },
                context=in_span(trace_id, span_id),
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
            )
        )
    provider.shutdown()
    return Emitted(
        trace_id=format(trace_id, "032x"),
        span_ids=[format(span_id, "016x") for span_id in span_ids],
        timestamps=timestamps,
        results=recording.results,
    )


# -- reading them back ------------------------------------------------------------------


def query_logs(api: str, token: str | None = None, **params: Any) -> list[dict[str, Any]]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = http().get(f"{api}/api/v1/logs", params=params, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    logs: list[dict[str, Any]] = response.json()["logs"]
    return logs


def wait_for_logs(
    api: str, count: int, token: str | None = None, **params: Any
) -> list[dict[str, Any]]:
    """The logs `params` select, once there are at least `count` of them."""

    def enough() -> list[dict[str, Any]] | None:
        logs = query_logs(api, token, limit=1000, **params)
        return logs if len(logs) >= count else None

    return wait_for(enough)


def metric(api: str, name: str) -> float:
    text = http().get(f"{api}/metrics", timeout=10).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def trace_span_count(api: str, trace_id: str, token: str | None = None) -> int:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = http().get(f"{api}/api/v1/traces/{trace_id}", headers=headers, timeout=10)
    return len(response.json()["spans"]) if response.status_code == 200 else 0


def rfc3339(ns: int) -> str:
    seconds = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{seconds}.{ns % 1_000_000_000:09d}Z"


# -- agentwatch in this process, with two tenants ---------------------------------------


@pytest.fixture(scope="module")
def faults() -> FaultInjectingStore:
    return FaultInjectingStore()


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, faults: FaultInjectingStore
) -> Iterator[AgentwatchThread]:
    """Two tenants; the real store behind a switch that a test can flip."""
    with pytest.MonkeyPatch.context() as env:  # the autouse cleaner is per test
        for name in list(os.environ):
            if name.startswith(("AGENTWATCH_", "OTEL_")):
                env.delenv(name)
        settings = make_settings(
            tmp_path_factory.mktemp("logs"), ingest_tokens=INGEST_TOKENS, api_tokens=API_TOKENS
        )
    with AgentwatchThread(settings, wrap_store=faults.wrap) as running:
        yield running


def endpoints_of(running: AgentwatchThread) -> dict[str, str]:
    return running.endpoints.as_json()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_log_exporter_evaluation_results_are_queryable_by_trace(
    secured: AgentwatchThread, transport: str
) -> None:
    trace_id = int.from_bytes(random_trace_id())
    exporter = sdk_exporter(transport, endpoints_of(secured), "ingest-a")

    emitted = emit_evaluations(exporter, trace_id, count=3)

    assert emitted.results == [LogRecordExportResult.SUCCESS] * 3
    api = secured.endpoints.api
    logs = wait_for_logs(api, 3, "read-a", trace_id=emitted.trace_id)
    assert len(logs) == 3
    by_span = {log["span_id"]: log for log in logs}
    assert sorted(by_span) == sorted(emitted.span_ids)  # lowercase, zero-padded hex
    for i, span_id in enumerate(emitted.span_ids):
        log = by_span[span_id]
        assert log["trace_id"] == emitted.trace_id
        assert log["event_name"] == EVENT
        assert log["body"] == f"answer {i} cites the wrong invoice"
        assert log["severity_text"] == "WARN"
        assert log["severity_number"] == SeverityNumber.WARN.value
        assert log["service_name"] == "eval-service"
        assert log["resource_attributes"]["team"] == "qa"
        assert log["time"] == rfc3339(emitted.timestamps[i])
        assert log["attributes"] == {
            "gen_ai.evaluation.name": "faithfulness",
            "gen_ai.evaluation.score.value": str(0.25 + i),
            "gen_ai.evaluation.score.label": "fail" if i else "pass",
            "attempt": str(i),
            "passed": "true" if i == 0 else "false",
        }
    # Newest first.
    assert [log["span_id"] for log in logs] == emitted.span_ids[::-1]
    # The other filters select the same records.
    (one,) = query_logs(api, "read-a", trace_id=emitted.trace_id, span_id=emitted.span_ids[1])
    assert one["body"] == "answer 1 cites the wrong invoice"
    recent = query_logs(api, "read-a", event_name=EVENT, service="eval-service", limit=1000)
    assert set(emitted.span_ids) <= {log["span_id"] for log in recent}
    assert query_logs(api, "read-a", trace_id=emitted.trace_id, event_name="other") == []


@pytest.mark.parametrize(("encoding", "gzipped"), [("json", False), ("protobuf", True)])
def test_raw_otlp_http_logs_are_stored_with_their_ids(
    secured: AgentwatchThread, encoding: str, gzipped: bool
) -> None:
    trace_id, span_id = random_trace_id().hex(), secrets.token_hex(8)
    now = time.time_ns()
    record: dict[str, Any] = {
        "timeUnixNano": str(now),
        "observedTimeUnixNano": str(now),
        "severityNumber": 9,  # integer enum
        "severityText": "INFO",
        "eventName": EVENT,
        "body": {"stringValue": "score dropped"},
        "attributes": [
            {"key": "gen_ai.evaluation.name", "value": {"stringValue": "relevance"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "812"}},
            {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.5}},
        ],
        "traceId": trace_id.upper(),  # OTLP JSON: hex, case-insensitive
        "spanId": span_id,
        "flags": 1,
        "someFutureField": {"ignored": True},
    }
    document = {
        "resourceLogs": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]
                },
                "scopeLogs": [{"scope": {"name": "raw"}, "logRecords": [record]}],
            }
        ]
    }
    if encoding == "json":
        transport, body = "http-json", json.dumps(document).encode()
    else:
        request = ExportLogsServiceRequest()
        record.pop("someFutureField")
        for key, hex_id in (("traceId", trace_id), ("spanId", span_id)):  # proto3 JSON: base64
            record[key] = base64.b64encode(bytes.fromhex(hex_id)).decode()
        json_format.ParseDict(document, request)
        transport, body = "http-protobuf", request.SerializeToString()

    answer = export(endpoints_of(secured), transport, body, gzipped, token="ingest-a")

    assert answer.ok, answer
    assert answer.rejected == 0
    expected_type = "application/json" if encoding == "json" else "application/x-protobuf"
    assert answer.headers["content-type"] == expected_type
    (log,) = wait_for_logs(secured.endpoints.api, 1, "read-a", trace_id=trace_id)
    assert (log["trace_id"], log["span_id"]) == (trace_id, span_id)
    assert log["event_name"] == EVENT
    assert log["body"] == "score dropped"
    assert (log["severity_number"], log["severity_text"]) == (9, "INFO")
    assert log["service_name"] == "json-svc"
    assert log["time"] == rfc3339(now)
    assert log["attributes"] == {
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.usage.input_tokens": "812",
        "gen_ai.evaluation.score.value": "0.5",
    }
    # The upper-case id finds the same record.
    assert len(query_logs(secured.endpoints.api, "read-a", trace_id=trace_id.upper())) == 1


@pytest.mark.parametrize("transport", ["grpc", "http-json"])
def test_a_record_with_a_short_trace_id_is_rejected_and_the_others_are_stored(
    secured: AgentwatchThread, transport: str
) -> None:
    trace_id = random_trace_id()
    request = logs_request(
        [
            proto_record("good-1", trace_id, secrets.token_bytes(8)),
            proto_record("bad", b"\x01\x02\x03", secrets.token_bytes(8)),
            proto_record("good-2", trace_id, secrets.token_bytes(8)),
        ]
    )

    answer = export(endpoints_of(secured), transport, request, token="ingest-a")

    assert answer.ok, answer
    assert answer.grpc_code in (None, grpc.StatusCode.OK)
    assert answer.http_status in (None, 200)
    assert answer.rejected == 1
    assert "trace_id" in answer.error_message
    logs = wait_for_logs(secured.endpoints.api, 2, "read-a", trace_id=trace_id.hex())
    assert sorted(log["body"] for log in logs) == ["good-1", "good-2"]
    assert query_logs(secured.endpoints.api, "read-a", trace_id="010203") == []


def test_a_record_without_any_time_takes_the_time_it_was_received(
    secured: AgentwatchThread,
) -> None:
    trace_id = random_trace_id()
    record = proto_record("no-time", trace_id)
    record.time_unix_nano = record.observed_time_unix_nano = 0  # OTLP: unknown
    before_ns = time.time_ns()

    answer = export(endpoints_of(secured), "grpc", logs_request([record]), token="ingest-a")

    assert answer.ok, answer
    (log,) = wait_for_logs(secured.endpoints.api, 1, "read-a", trace_id=trace_id.hex())
    assert rfc3339(before_ns) <= log["time"] <= rfc3339(time.time_ns())


def test_a_request_spanning_a_hundred_and_one_days_is_stored(secured: AgentwatchThread) -> None:
    """One day partition per day: a backfill must not make its segment uninsertable."""
    trace_id = random_trace_id()
    day_ns = 86_400 * 1_000_000_000
    records = []
    for days in range(101):  # within the default 30-day retention or not: all accepted
        record = proto_record(f"day-{days}", trace_id)
        record.time_unix_nano = time.time_ns() - days * day_ns
        records.append(record)
    spans = make_request([make_span(f"day-{days}", trace_id=trace_id) for days in range(101)])
    for index, span in enumerate(spans.resource_spans[0].scope_spans[0].spans):
        span.start_time_unix_nano = time.time_ns() - index * day_ns
        span.end_time_unix_nano = span.start_time_unix_nano + 1000
    endpoints = endpoints_of(secured)

    assert export(endpoints, "grpc", logs_request(records), token="ingest-a").ok
    assert grpc_export(endpoints["otlp_grpc"], spans.SerializeToString(), token="ingest-a").ok

    api = secured.endpoints.api
    wait_for(lambda: metric(api, "agentwatch_wal_bytes") == 0 and _stored(api))
    # Rows past the retention TTL are dropped at insert; the recent ones are stored.
    kept = query_logs(api, "read-a", trace_id=trace_id.hex(), limit=1000)
    assert {log["body"] for log in kept} >= {f"day-{days}" for days in range(29)}
    assert trace_span_count(api, trace_id.hex(), "read-a") >= 29


def _stored(api: str) -> bool:
    return http().get(f"{api}/readyz", timeout=10).status_code == 200


def test_each_tenant_reads_only_its_own_logs(secured: AgentwatchThread) -> None:
    endpoints = endpoints_of(secured)
    acme = emit_evaluations(
        sdk_exporter("grpc", endpoints, "ingest-a"), int.from_bytes(random_trace_id()), 2
    )
    globex = emit_evaluations(
        sdk_exporter("http", endpoints, "ingest-b"),
        int.from_bytes(random_trace_id()),
        2,
        service="globex-eval",
    )
    assert acme.results + globex.results == [LogRecordExportResult.SUCCESS] * 4
    api = secured.endpoints.api

    assert len(wait_for_logs(api, 2, "read-a", trace_id=acme.trace_id)) == 2
    assert len(wait_for_logs(api, 2, "read-b", trace_id=globex.trace_id)) == 2

    assert query_logs(api, "read-b", trace_id=acme.trace_id) == []
    assert query_logs(api, "read-a", trace_id=globex.trace_id) == []
    seen_by_acme = {log["trace_id"] for log in query_logs(api, "read-a", limit=1000)}
    seen_by_globex = {log["trace_id"] for log in query_logs(api, "read-b", limit=1000)}
    assert acme.trace_id in seen_by_acme
    assert globex.trace_id not in seen_by_acme
    assert seen_by_globex == {globex.trace_id}
    assert query_logs(api, "read-a", service="globex-eval") == []
    response = http().get(f"{api}/api/v1/logs", params={"trace_id": acme.trace_id}, timeout=10)
    assert response.status_code == 401


def test_logs_and_spans_sent_interleaved_both_come_back_complete(
    secured: AgentwatchThread,
) -> None:
    endpoints = endpoints_of(secured)
    first_run = send_agent_run(make_exporter(False, endpoints["otlp_grpc"], "ingest-a"))
    first = emit_evaluations(sdk_exporter("grpc", endpoints, "ingest-a"), int(first_run, 16))
    second_run = send_agent_run(make_exporter(True, endpoints["otlp_http"], "ingest-a"), "beta")
    second = emit_evaluations(sdk_exporter("http", endpoints, "ingest-a"), int(second_run, 16), 2)
    assert first.results + second.results == [LogRecordExportResult.SUCCESS] * 5
    api = secured.endpoints.api

    wait_for(
        lambda: (
            trace_span_count(api, first_run, "read-a") == 4
            and trace_span_count(api, second_run, "read-a") == 4
        )
    )
    first_logs = wait_for_logs(api, 3, "read-a", trace_id=first_run)
    second_logs = wait_for_logs(api, 2, "read-a", trace_id=second_run)

    assert sorted(log["span_id"] for log in first_logs) == sorted(first.span_ids)
    assert sorted(log["span_id"] for log in second_logs) == sorted(second.span_ids)
    headers = {"authorization": "Bearer read-a"}
    trace = http().get(f"{api}/api/v1/traces/{first_run}", headers=headers, timeout=10).json()
    assert {span["agent_name"] for span in trace["spans"]} == {"billing-agent"}


def test_logs_in_a_segment_stored_but_reported_failed_are_stored_once(
    secured: AgentwatchThread, faults: FaultInjectingStore
) -> None:
    """The store retries the whole segment; its log rows, like its spans, go in once."""
    api = secured.endpoints.api
    failures, inserts = metric(api, TRANSIENT_FAILURES), metric(api, INSERTS)
    trace_id = random_trace_id()
    records = [proto_record(f"retried {i}", trace_id, secrets.token_bytes(8)) for i in range(5)]
    faults.lose_reply_once()

    answer = export(endpoints_of(secured), "grpc", logs_request(records), token="ingest-a")

    assert answer.ok
    # The insert happened, was reported failed, and was retried until it succeeded.
    wait_for(lambda: metric(api, TRANSIENT_FAILURES) > failures and metric(api, INSERTS) > inserts)
    logs = query_logs(api, "read-a", trace_id=trace_id.hex(), limit=1000)
    assert sorted(log["body"] for log in logs) == [f"retried {i}" for i in range(5)]


def test_logs_without_a_valid_token_are_refused_by_the_sdk_exporter(
    secured: AgentwatchThread,
) -> None:
    endpoints = endpoints_of(secured)
    for transport in ("grpc", "http"):
        emitted = emit_evaluations(
            sdk_exporter(transport, endpoints, "nope"), int.from_bytes(random_trace_id()), 1
        )
        assert emitted.results == [LogRecordExportResult.FAILURE]


# -- the receivers alone: the status-code table for logs --------------------------------

LIMIT = 256 * 1024
TOKEN = "s3cret"


@dataclass
class FakeSink:
    """Records accepted requests; can be told to be full."""

    count: Callable[[Any], int]
    accepted: list[tuple[str, Any]] = field(default_factory=list)
    overloaded: bool = False

    async def accept(self, tenant: str, request: Any, raw: bytes | None) -> int:
        if self.overloaded:
            raise OverloadedError("queue full", retry_after_s=2.0)
        self.accepted.append((tenant, request))
        return self.count(request)

    @property
    def items(self) -> int:
        return sum(self.count(request) for _, request in self.accepted)


class Receivers:
    """The real gRPC and HTTP receivers serving traces and logs, over two fake sinks."""

    def __init__(self) -> None:
        self.traces = FakeSink(span_count)
        self.logs = FakeSink(log_record_count)
        self.endpoints: dict[str, str] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        authenticator = TokenAuthenticator({TOKEN: "acme"})
        metrics = IngestMetrics()
        handlers = [
            ExportHandler(self.traces.accept, authenticator, metrics, TRACES),
            ExportHandler(self.logs.accept, authenticator, metrics, signal=LOGS),
        ]
        self._grpc = GrpcReceiver(handlers, LIMIT)
        self._http = HttpServer(HttpReceiver(handlers, LIMIT), bind_socket("127.0.0.1:0"))

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def start(self) -> None:
        self._thread.start()
        self.endpoints["otlp_grpc"] = str(self._call(self._grpc.start("127.0.0.1:0")))
        self._call(self._http.start())
        self.endpoints["otlp_http"] = f"http://{self._http.address}"

    def stop(self) -> None:
        self._call(self._grpc.stop(0))
        self._call(self._http.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    running = Receivers()
    running.start()
    yield running
    running.stop()


@pytest.fixture
def sinks(receivers: Receivers) -> Receivers:
    receivers.traces.accepted.clear()
    receivers.logs.accepted.clear()
    receivers.logs.overloaded = False
    return receivers


CASES = [(t, g) for t in ("grpc", "http-protobuf", "http-json") for g in (False, True)]


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_valid_logs_request_is_accepted_for_the_token_tenant(
    sinks: Receivers, transport: str, gzipped: bool
) -> None:
    request = logs_request([proto_record("a", random_trace_id()), proto_record("b")])

    answer = export(sinks.endpoints, transport, request, gzipped, TOKEN)

    assert answer.ok, answer
    assert answer.rejected == 0
    assert sinks.logs.items == 2
    ((tenant, accepted),) = sinks.logs.accepted
    assert tenant == "acme"
    assert accepted == request
    assert sinks.traces.items == 0


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_undecodable_logs_body_is_invalid_argument_or_400(
    sinks: Receivers, transport: str, gzipped: bool
) -> None:
    garbage = b"\xff\xfe not an otlp message \x00\x01" * 3

    answer = export(sinks.endpoints, transport, garbage, gzipped, TOKEN)

    assert not answer.ok
    if transport == "grpc":
        assert answer.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert answer.http_status == 400
        assert answer.status_body is not None  # a google.rpc.Status in the request's type
        assert answer.status_body.code == 3
        assert answer.status_body.message
    assert sinks.logs.items == 0


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_short_trace_id_log_record_is_partially_rejected(
    sinks: Receivers, transport: str, gzipped: bool
) -> None:
    trace_id = random_trace_id()
    request = logs_request(
        [
            proto_record("good-1", trace_id),
            proto_record("bad", b"\x01\x02\x03"),
            proto_record("good-2", trace_id, span_id=b"\x01" * 8),
        ]
    )

    answer = export(sinks.endpoints, transport, request, gzipped, TOKEN)

    assert answer.ok
    assert answer.rejected == 1
    assert "trace_id must be 16 bytes, got 3" in answer.error_message
    ((_, accepted),) = sinks.logs.accepted
    bodies = [r.body.string_value for r in accepted.resource_logs[0].scope_logs[0].log_records]
    assert bodies == ["good-1", "good-2"]


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
@pytest.mark.parametrize("token", [None, "wrong"])
def test_logs_without_a_valid_token_are_unauthenticated_or_401(
    sinks: Receivers, transport: str, gzipped: bool, token: str | None
) -> None:
    answer = export(sinks.endpoints, transport, logs_request([proto_record("x")]), gzipped, token)

    assert not answer.ok
    if transport == "grpc":
        assert answer.grpc_code == grpc.StatusCode.UNAUTHENTICATED
    else:
        assert answer.http_status == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.status_body is not None
        assert answer.status_body.code == 16
    assert sinks.logs.items == 0


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_overloaded_pipeline_answers_logs_unavailable_or_503_with_retry_hint(
    sinks: Receivers, transport: str, gzipped: bool
) -> None:
    sinks.logs.overloaded = True

    answer = export(sinks.endpoints, transport, logs_request([proto_record("x")]), gzipped, TOKEN)

    assert not answer.ok
    if transport == "grpc":
        assert answer.grpc_code == grpc.StatusCode.UNAVAILABLE
    else:
        assert answer.http_status == 503
        assert answer.headers["retry-after"] == "2"
    assert answer.retry_delay_s == 2.0


def test_logs_path_methods_and_unknown_paths(sinks: Receivers) -> None:
    url = sinks.endpoints["otlp_http"]
    get = http().get(f"{url}/v1/logs")
    assert get.status_code == 405
    assert get.headers["allow"] == "POST"
    assert http().post(f"{url}/v1/foo", content=b"").status_code == 404
    assert http().get(f"{url}/v1/foo").status_code == 404
    # Traces still go to the span sink, next to logs on the same receivers.
    body = make_request([make_span()]).SerializeToString()
    traced = grpc_export(sinks.endpoints["otlp_grpc"], body, token=TOKEN)
    assert traced.ok
    assert sinks.traces.items == 1
    assert sinks.logs.items == 0


# -- agentwatch as a subprocess: kill -9 -----------------------------------------------


def test_logs_and_spans_interleaved_in_one_segment_survive_kill_9_exactly_once(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    # Never sealed by age, far from sealed by size: everything stays in one open segment.
    server = AgentwatchProcess(data_dir, env={"AGENTWATCH_FLUSH_INTERVAL_S": "60"}).start()
    trace_id = random_trace_id()
    sent: list[str] = []
    try:
        endpoints = server.endpoints
        for i, transport in enumerate(["grpc", "http-protobuf", "http-json"]):
            bodies = [f"record {i}-{j}" for j in range(10)]
            records = [proto_record(body, trace_id, secrets.token_bytes(8)) for body in bodies]
            assert export(endpoints, transport, logs_request(records)).ok
            sent += bodies
        first_run = send_agent_run(make_exporter(False, endpoints["otlp_grpc"], None))
        # The first run's evaluations, between the two runs.
        evaluations = emit_evaluations(sdk_exporter("http", endpoints, None), int(first_run, 16))
        second_run = send_agent_run(make_exporter(True, endpoints["otlp_http"], None), "beta")
        assert evaluations.results == [LogRecordExportResult.SUCCESS] * 3
        api = endpoints["api"]
        # Acknowledged, not yet stored: only the log has them when the process dies.
        assert query_logs(api, trace_id=trace_id.hex()) == []
        assert query_logs(api, trace_id=first_run) == []
        assert trace_span_count(api, first_run) == 0
        assert metric(api, "agentwatch_wal_bytes") > 0
        server.signal(signal.SIGKILL)
        server.wait()
    finally:
        server.kill()

    restarted = AgentwatchProcess(data_dir, env={"AGENTWATCH_FLUSH_INTERVAL_S": "0.2"}).start()
    try:
        endpoints = restarted.endpoints
        api = endpoints["api"]
        wait_for(lambda: metric(api, "agentwatch_wal_bytes") == 0)
        segments = metric(api, INSERTS)
        replayed = query_logs(api, trace_id=trace_id.hex(), limit=1000)
        replayed_evaluations = query_logs(api, trace_id=first_run)
        spans = (trace_span_count(api, first_run), trace_span_count(api, second_run))
        # A segment written after the restart is stored too (its dedup token is new).
        later = logs_request([proto_record("after restart", trace_id)])
        assert export(endpoints, "grpc", later).ok
        after = wait_for_logs(api, len(sent) + 1, trace_id=trace_id.hex())
    finally:
        code, _, err = restarted.stop()
    assert code == 0, err

    assert segments == 1  # the one replayed segment held logs and spans alike
    assert sorted(log["body"] for log in replayed) == sorted(sent)  # all there, once each
    assert sorted(log["span_id"] for log in replayed_evaluations) == sorted(evaluations.span_ids)
    assert spans == (4, 4)
    assert sorted(log["body"] for log in after) == sorted([*sent, "after restart"])

"""The OTLP status-code table, pinned over {gRPC, HTTP-protobuf, HTTP-JSON} x {gzip, none}.

Real receivers on free loopback ports; behind them a small fake sink (this is a test
of the receivers alone, so the pipeline is replaced by the one callable they use).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from agentwatch._http_server import HttpServer, bind_socket
from collector import ExportHandler, GrpcReceiver, HttpReceiver, TokenAuthenticator
from ingest import IngestMetrics, OverloadedError, span_count
from tests.otlp import (
    ExportResult,
    grpc_export,
    http_export,
    make_request,
    make_span,
    to_otlp_json,
)

LIMIT = 256 * 1024
TOKEN = "s3cret"


@dataclass
class FakeSink:
    """Records accepted requests; can be told to be full."""

    accepted: list[tuple[str, ExportTraceServiceRequest]] = field(default_factory=list)
    overloaded: bool = False

    async def accept(
        self, tenant: str, request: ExportTraceServiceRequest, raw: bytes | None
    ) -> int:
        if self.overloaded:
            raise OverloadedError("queue full", retry_after_s=2.0)
        self.accepted.append((tenant, request))
        return span_count(request)

    @property
    def spans(self) -> int:
        return sum(span_count(request) for _, request in self.accepted)


class Receivers:
    def __init__(self, tokens: dict[str, str]) -> None:
        self.sink = FakeSink()
        self.grpc_target = ""
        self.http_url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        handler = ExportHandler(self.sink.accept, TokenAuthenticator(tokens), IngestMetrics())
        self._grpc = GrpcReceiver(handler, LIMIT)
        self._http = HttpServer(HttpReceiver(handler, LIMIT), bind_socket("127.0.0.1:0"))

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)  # type: ignore[arg-type]

    def start(self) -> None:
        self._thread.start()
        self.grpc_target = str(self._call(self._grpc.start("127.0.0.1:0")))
        self._call(self._http.start())
        self.http_url = f"http://{self._http.address}"

    def stop(self) -> None:
        self._call(self._grpc.stop(0))
        self._call(self._http.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def receivers() -> Iterator[Receivers]:
    running = Receivers({TOKEN: "acme"})
    running.start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _reset_sink(receivers: Receivers) -> None:
    receivers.sink.accepted.clear()
    receivers.sink.overloaded = False


TRANSPORTS = ["grpc", "http-protobuf", "http-json"]
COMPRESSION = [False, True]


def export(
    receivers: Receivers,
    transport: str,
    request_or_body: ExportTraceServiceRequest | bytes,
    gzipped: bool,
    token: str | None = TOKEN,
) -> ExportResult:
    if isinstance(request_or_body, bytes):
        body = request_or_body
    elif transport == "http-json":
        body = to_otlp_json(request_or_body)
    else:
        body = request_or_body.SerializeToString()
    if transport == "grpc":
        return grpc_export(receivers.grpc_target, body, gzipped, token)
    content_type = "application/json" if transport == "http-json" else "application/x-protobuf"
    return http_export(receivers.http_url, body, content_type, gzipped, token)


CASES = [(t, g) for t in TRANSPORTS for g in COMPRESSION]


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_valid_request_is_accepted_for_the_token_tenant(
    receivers: Receivers, transport: str, gzipped: bool
) -> None:
    result = export(receivers, transport, make_request([make_span(), make_span()]), gzipped)

    assert result.ok
    assert result.grpc_code in (None, grpc.StatusCode.OK)
    assert result.http_status in (None, 200)
    assert result.rejected_spans == 0
    assert receivers.sink.spans == 2
    assert receivers.sink.accepted[0][0] == "acme"


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_undecodable_body_is_invalid_argument_or_400(
    receivers: Receivers, transport: str, gzipped: bool
) -> None:
    garbage = b"\xff\xfe not an otlp message \x00\x01" * 3

    result = export(receivers, transport, garbage, gzipped)

    assert not result.ok
    if transport == "grpc":
        assert result.grpc_code == grpc.StatusCode.INVALID_ARGUMENT
    else:
        assert result.http_status == 400
        assert result.status_body is not None  # a google.rpc.Status in the request's type
        assert result.status_body.code == 3
        assert result.status_body.message
    assert receivers.sink.spans == 0


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
@pytest.mark.parametrize(
    ("trace_id", "span_id"),
    [
        (bytes(16), b"\x01" * 8),  # all-zero trace id
        (b"\x01" * 16, bytes(8)),  # all-zero span id
        (b"\x01" * 15, b"\x01" * 8),  # short trace id
        (b"\x01" * 16, b"\x01" * 9),  # long span id
    ],
)
def test_spans_with_invalid_ids_are_partially_rejected(
    receivers: Receivers, transport: str, gzipped: bool, trace_id: bytes, span_id: bytes
) -> None:
    request = make_request(
        [make_span("good-1"), make_span("bad", trace_id, span_id), make_span("good-2")]
    )

    result = export(receivers, transport, request, gzipped)

    assert result.ok
    assert result.rejected_spans == 1
    assert "invalid" in result.error_message
    stored = [
        span.name
        for _, accepted in receivers.sink.accepted
        for span in accepted.resource_spans[0].scope_spans[0].spans
    ]
    assert stored == ["good-1", "good-2"]


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_body_over_the_limit_after_decompression_is_resource_exhausted_or_413(
    receivers: Receivers, transport: str, gzipped: bool
) -> None:
    # ~1 MiB of one repeated character: gzip makes it ~1 KiB, inflating exceeds LIMIT.
    big = make_span(attributes={"payload": "x" * (4 * LIMIT)})

    result = export(receivers, transport, make_request([big]), gzipped)

    assert not result.ok
    if transport == "grpc":
        assert result.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert result.retry_delay_s is None  # not retryable: no RetryInfo
    else:
        assert result.http_status == 413
        assert result.retry_delay_s is None
    assert receivers.sink.spans == 0


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_unauthenticated_or_401(
    receivers: Receivers, transport: str, gzipped: bool, token: str | None
) -> None:
    result = export(receivers, transport, make_request([make_span()]), gzipped, token=token)

    assert not result.ok
    if transport == "grpc":
        assert result.grpc_code == grpc.StatusCode.UNAUTHENTICATED
    else:
        assert result.http_status == 401
    assert receivers.sink.spans == 0


@pytest.mark.parametrize(("transport", "gzipped"), CASES)
def test_overloaded_pipeline_answers_unavailable_or_503_with_retry_hint(
    receivers: Receivers, transport: str, gzipped: bool
) -> None:
    receivers.sink.overloaded = True

    result = export(receivers, transport, make_request([make_span()]), gzipped)

    assert not result.ok
    if transport == "grpc":
        assert result.grpc_code == grpc.StatusCode.UNAVAILABLE
    else:
        assert result.http_status == 503
    assert result.retry_delay_s == 2.0


@pytest.mark.parametrize("gzipped", COMPRESSION)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_wrong_media_type_is_415(receivers: Receivers, gzipped: bool, content_type: str) -> None:
    body = make_request([make_span()]).SerializeToString()

    result = http_export(receivers.http_url, body, content_type, gzipped, TOKEN)

    assert result.http_status == 415
    assert receivers.sink.spans == 0


def test_unknown_content_encoding_is_400(receivers: Receivers) -> None:
    response = httpx.post(
        f"{receivers.http_url}/v1/traces",
        content=make_request([make_span()]).SerializeToString(),
        headers={
            "content-type": "application/x-protobuf",
            "content-encoding": "br",
            "authorization": f"Bearer {TOKEN}",
        },
    )
    assert response.status_code == 400


def test_other_paths_and_methods_are_404_and_405(receivers: Receivers) -> None:
    assert httpx.post(f"{receivers.http_url}/v1/logs", content=b"").status_code == 404
    assert httpx.get(f"{receivers.http_url}/v1/traces").status_code == 405

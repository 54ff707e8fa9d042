"""OTLP/gRPC receiver: `TraceService/Export` and `LogsService/Export` on one server.

Registered as a generic handler that receives the raw request bytes, so an
undecodable body is answered INVALID_ARGUMENT (grpcio's own deserializer would
answer INTERNAL). gzip is handled by gRPC itself; `grpc.max_receive_message_length`
bounds the message after decompression and answers RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from collector._decode import UndecodableBodyError, parse_protobuf
from collector._export import ExportHandler, ExportOutcome, Failure

_GRPC_CODES = {
    Failure.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Failure.UNDECODABLE: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Failure.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    Failure.OVERLOADED: grpc.StatusCode.UNAVAILABLE,
}


def _status_details(outcome: ExportOutcome, code: grpc.StatusCode) -> bytes:
    """A `google.rpc.Status` with RetryInfo, the trailer OTLP clients read for backoff."""
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(
            seconds=int(outcome.retry_after_s),
            nanos=int((outcome.retry_after_s % 1) * 1e9),
        )
    )
    detail = any_pb2.Any()
    detail.Pack(retry)
    status = status_pb2.Status(code=code.value[0], message=outcome.message, details=[detail])
    encoded: bytes = status.SerializeToString()
    return encoded


class GrpcReceiver:
    """One gRPC server; one `Export` service per handler (a handler per signal)."""

    def __init__(
        self, handlers: ExportHandler | Sequence[ExportHandler], max_message_bytes: int
    ) -> None:
        self._handlers = [handlers] if isinstance(handlers, ExportHandler) else list(handlers)
        self._max_message_bytes = max_message_bytes
        self._server: grpc.aio.Server | None = None

    async def start(self, address: str) -> str:
        """Bind `host:port` (port 0 picks one) and serve; returns the bound address."""
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers(
            tuple(
                grpc.method_handlers_generic_handler(
                    handler.signal.grpc_service,
                    {
                        "Export": grpc.unary_unary_rpc_method_handler(
                            functools.partial(self._export, handler),
                            request_deserializer=None,
                            response_serializer=_serialize,
                        )
                    },
                )
                for handler in self._handlers
            )
        )
        host, _, _ = address.rpartition(":")
        port = self._server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot bind OTLP/gRPC to {address}")
        await self._server.start()
        return f"{host}:{port}"

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None

    async def _export(self, handler: ExportHandler, body: bytes, context: Any) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        tenant = handler.authenticator.tenant_for(metadata.get("authorization"))
        if tenant is None:
            outcome = handler.fail("grpc", Failure.UNAUTHENTICATED, "missing or bad token")
            await self._abort(context, outcome)
        try:
            request = parse_protobuf(body, handler.signal)
        except UndecodableBodyError as exc:
            await self._abort(context, handler.fail("grpc", Failure.UNDECODABLE, str(exc)))
        assert tenant is not None
        outcome = await handler.export("grpc", tenant, request, body)
        if outcome.failure is not None:
            await self._abort(context, outcome)
        return handler.signal.response(outcome.rejected, outcome.message)

    async def _abort(self, context: Any, outcome: ExportOutcome) -> None:
        assert outcome.failure is not None
        code = _GRPC_CODES[outcome.failure]
        if outcome.failure is Failure.OVERLOADED:
            context.set_trailing_metadata(
                (("grpc-status-details-bin", _status_details(outcome, code)),)
            )
        await context.abort(code, outcome.message)


def _serialize(response: Any) -> bytes:
    data: bytes = response.SerializeToString()
    return data

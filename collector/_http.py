"""OTLP/HTTP receiver: `POST /v1/traces` and `/v1/logs`, protobuf or JSON, optionally gzip.

A plain ASGI app (no framework on the hot path). The body is read with a cap and
decompressed with a cap, so neither a huge upload nor a gzip bomb is held in memory.
Errors carry a `google.rpc.Status` body in the request's own content type.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from google.protobuf import json_format
from google.rpc import status_pb2

from collector._decode import (
    BodyTooLargeError,
    UndecodableBodyError,
    UnsupportedEncodingError,
    decompress,
    parse_json,
    parse_protobuf,
)
from collector._export import ExportHandler, ExportOutcome, Failure

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

_HTTP_STATUS = {
    Failure.UNAUTHENTICATED: 401,
    Failure.UNDECODABLE: 400,
    Failure.TOO_LARGE: 413,
    Failure.UNSUPPORTED_MEDIA_TYPE: 415,
    Failure.OVERLOADED: 503,
}
# google.rpc.Code values for the Status body.
_RPC_CODE = {
    Failure.UNAUTHENTICATED: 16,
    Failure.UNDECODABLE: 3,
    Failure.TOO_LARGE: 8,
    Failure.UNSUPPORTED_MEDIA_TYPE: 3,
    Failure.OVERLOADED: 14,
}


class _TooLarge(Exception):
    pass


class HttpReceiver:
    """The ASGI application; run it with any ASGI server (agentwatch uses uvicorn)."""

    def __init__(
        self, handlers: ExportHandler | Sequence[ExportHandler], max_body_bytes: int
    ) -> None:
        handler_list = [handlers] if isinstance(handlers, ExportHandler) else list(handlers)
        self._routes = {handler.signal.http_path: handler for handler in handler_list}
        self._limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        handler = self._routes.get(scope["path"].rstrip("/"))
        if handler is None:
            await _respond(send, 404, "text/plain", b"not found")
            return
        if scope["method"] != "POST":
            await _respond(send, 405, "text/plain", b"method not allowed", [(b"allow", b"POST")])
            return
        headers = _headers(scope)
        media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        reply_type = JSON if media_type == JSON else PROTOBUF
        outcome = await self._handle(handler, headers, media_type, receive)
        if outcome.failure is not None:
            await self._respond_failure(send, outcome, reply_type)
            return
        response = handler.signal.response(outcome.rejected, outcome.message)
        await _respond(send, 200, reply_type, _encode(response, reply_type))

    async def _handle(
        self, handler: ExportHandler, headers: dict[str, str], media_type: str, receive: Receive
    ) -> ExportOutcome:
        fail = handler.fail
        tenant = handler.authenticator.tenant_for(headers.get("authorization"))
        if tenant is None:
            return fail("http", Failure.UNAUTHENTICATED, "missing or bad token")
        if media_type not in (PROTOBUF, JSON):
            message = f"unsupported content type {media_type!r}; use {PROTOBUF} or {JSON}"
            return fail("http", Failure.UNSUPPORTED_MEDIA_TYPE, message)
        signal = handler.signal
        try:
            body = await self._read_body(receive, headers)
            body = decompress(body, headers.get("content-encoding", ""), self._limit)
            if media_type == JSON:
                request = parse_json(body, signal)
            else:
                request = parse_protobuf(body, signal)
        except (_TooLarge, BodyTooLargeError) as exc:
            return fail("http", Failure.TOO_LARGE, str(exc))
        except (UndecodableBodyError, UnsupportedEncodingError) as exc:
            return fail("http", Failure.UNDECODABLE, str(exc))
        raw = body if media_type == PROTOBUF else None
        return await handler.export("http", tenant, request, raw)

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._limit:
            raise _TooLarge(f"body of {declared} bytes is over the {self._limit}-byte limit")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise UndecodableBodyError("client disconnected before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                raise _TooLarge(f"body is over the {self._limit}-byte limit")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _respond_failure(self, send: Send, outcome: ExportOutcome, reply_type: str) -> None:
        assert outcome.failure is not None
        status = status_pb2.Status(code=_RPC_CODE[outcome.failure], message=outcome.message)
        extra: list[tuple[bytes, bytes]] = []
        if outcome.failure is Failure.OVERLOADED:
            extra.append((b"retry-after", str(max(1, math.ceil(outcome.retry_after_s))).encode()))
        if outcome.failure is Failure.UNAUTHENTICATED:
            extra.append((b"www-authenticate", b"Bearer"))
        await _respond(
            send, _HTTP_STATUS[outcome.failure], reply_type, _encode(status, reply_type), extra
        )


def _encode(message: Any, content_type: str) -> bytes:
    if content_type == JSON:
        text: str = json_format.MessageToJson(message, indent=None)
        return text.encode("utf-8")
    data: bytes = message.SerializeToString()
    return data


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


async def _respond(
    send: Send,
    status: int,
    content_type: str,
    body: bytes,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return

"""Body decoding shared by the receivers: bounded decompression, protobuf and OTLP JSON."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from collector._signals import TRACES, Signal


class BodyTooLargeError(Exception):
    """The (decompressed) body is over the configured limit."""


class UndecodableBodyError(Exception):
    """The body is not a valid export request in the declared encoding."""


class UnsupportedEncodingError(Exception):
    """A Content-Encoding this receiver does not implement."""


_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate `body` without ever producing more than `limit` bytes (gzip bombs stop here)."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise BodyTooLargeError(f"body of {len(body)} bytes is over the {limit}-byte limit")
        return body
    wbits = _WBITS.get(encoding)
    if wbits is None:
        raise UnsupportedEncodingError(f"unsupported Content-Encoding {encoding!r}")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise BodyTooLargeError(f"decompressed body is over the {limit}-byte limit")
        out += inflater.flush()
    except zlib.error as exc:
        raise UndecodableBodyError(f"invalid {encoding} body: {exc}") from exc
    if len(out) > limit:
        raise BodyTooLargeError(f"decompressed body is over the {limit}-byte limit")
    if not inflater.eof:
        raise UndecodableBodyError(f"truncated {encoding} body")
    return out


def parse_protobuf(body: bytes, signal: Signal = TRACES) -> Any:
    request = signal.request_type()
    try:
        request.ParseFromString(body)
    except (DecodeError, RuntimeError, ValueError) as exc:
        name = signal.request_type.__name__
        raise UndecodableBodyError(f"invalid protobuf {name}: {exc}") from exc
    return request


def parse_json(body: bytes, signal: Signal = TRACES) -> Any:
    """Parse OTLP JSON: like proto3 JSON, except trace and span ids are hex, not base64."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UndecodableBodyError(f"invalid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UndecodableBodyError("invalid OTLP JSON: the top level must be an object")
    try:
        _hex_ids_to_base64(document, signal)
        return json_format.ParseDict(document, signal.request_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, AttributeError) as exc:
        raise UndecodableBodyError(f"invalid OTLP JSON: {exc}") from exc


def _items(parent: dict[str, Any], camel: str, snake: str) -> list[Any]:
    value = parent.get(camel, parent.get(snake, []))
    if not isinstance(value, list):
        raise TypeError(f"{camel} must be an array")
    return [item for item in value if isinstance(item, dict)]


def _hex_ids_to_base64(document: dict[str, Any], signal: Signal) -> None:
    (resources, resource_keys), (scopes, scope_keys), (items, item_keys) = signal.json_path
    for resource in _items(document, resources, resource_keys):
        for scope in _items(resource, scopes, scope_keys):
            for item in _items(scope, items, item_keys):
                _convert_ids(item)
                for link in _items(item, "links", "links"):  # spans only
                    _convert_ids(link)


_ID_KEYS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


def _convert_ids(obj: dict[str, Any]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str):
            obj[key] = _hex_to_base64(value)


def _hex_to_base64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        # Not hex: keep one byte so the id has the wrong length and the span is
        # rejected through partial success, not the whole request.
        raw = b"\x00" if value else b""
    return base64.b64encode(raw).decode("ascii")

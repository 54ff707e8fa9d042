"""Collector: the OTLP receivers (gRPC and HTTP), authentication and status codes."""

from collector._decode import (
    BodyTooLargeError,
    UndecodableBodyError,
    decompress,
    parse_json,
    parse_protobuf,
)
from collector._export import AcceptFn, ExportHandler, ExportOutcome, Failure, TokenAuthenticator
from collector._grpc import GrpcReceiver
from collector._http import HttpReceiver
from collector._signals import LOGS, TRACES, Signal

__all__ = [
    "LOGS",
    "TRACES",
    "AcceptFn",
    "BodyTooLargeError",
    "ExportHandler",
    "ExportOutcome",
    "Failure",
    "GrpcReceiver",
    "HttpReceiver",
    "Signal",
    "TokenAuthenticator",
    "UndecodableBodyError",
    "decompress",
    "parse_json",
    "parse_protobuf",
]

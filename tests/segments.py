"""Writing write-ahead-log segment files for store tests, with the real record encoder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from ingest import EnclosingResolver
from ingest._resolve import build_record


def write_segment(
    path: Path,
    requests: Iterable[ExportTraceServiceRequest],
    tenant: str = "default",
    resolver: EnclosingResolver | None = None,
) -> Path:
    resolver = resolver or EnclosingResolver()
    with path.open("wb") as out:
        for request in requests:
            out.write(build_record(tenant, request, resolver))
    return path

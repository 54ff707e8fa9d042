"""Ingest: validate, translate and normalize spans, and store them in ClickHouse."""

from ingest._agent_spans import (
    AgentSpan,
    Evaluation,
    read_agent_spans,
    record_agent_spans,
)
from ingest._batch import COLUMN_NAMES, SpanBatch
from ingest._enclosing import Correction, EnclosingResolver, SpanLink
from ingest._errors import (
    IngestError,
    OverloadedError,
    PermanentStoreError,
    StoreInUseError,
    TransientStoreError,
)
from ingest._logs import LOG_COLUMNS, drop_invalid_log_records, log_record_count
from ingest._metrics import IngestMetrics
from ingest._pipeline import IngestPipeline, PipelineConfig, SegmentConsumer, SpanStore
from ingest._store import ClickHouseStore, chdb_dsn
from ingest._translate import drop_invalid_spans, span_count, translate
from ingest._wal import Segment, WalConfig

__all__ = [
    "COLUMN_NAMES",
    "LOG_COLUMNS",
    "AgentSpan",
    "ClickHouseStore",
    "Correction",
    "EnclosingResolver",
    "Evaluation",
    "IngestError",
    "IngestMetrics",
    "IngestPipeline",
    "OverloadedError",
    "PermanentStoreError",
    "PipelineConfig",
    "Segment",
    "SegmentConsumer",
    "SpanBatch",
    "SpanLink",
    "SpanStore",
    "StoreInUseError",
    "TransientStoreError",
    "WalConfig",
    "chdb_dsn",
    "drop_invalid_log_records",
    "drop_invalid_spans",
    "log_record_count",
    "read_agent_spans",
    "record_agent_spans",
    "span_count",
    "translate",
]

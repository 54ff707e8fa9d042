"""Prometheus self-metrics. One registry per running instance (tests run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IngestMetrics:
    """Counts, never log lines, for everything that happens per span or per request."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.spans_received = Counter(
            "agentwatch_spans_received",
            "Spans in decoded export requests",
            ["transport"],
            registry=r,
        )
        self.spans_accepted = Counter(
            "agentwatch_spans_accepted",
            "Spans acknowledged to clients",
            ["transport"],
            registry=r,
        )
        self.spans_rejected = Counter(
            "agentwatch_spans_rejected",
            "Spans refused, by reason",
            ["transport", "reason"],
            registry=r,
        )
        self.log_records_received = Counter(
            "agentwatch_log_records_received",
            "Log records in decoded export requests",
            ["transport"],
            registry=r,
        )
        self.log_records_accepted = Counter(
            "agentwatch_log_records_accepted",
            "Log records acknowledged to clients",
            ["transport"],
            registry=r,
        )
        self.log_records_rejected = Counter(
            "agentwatch_log_records_rejected",
            "Log records refused, by reason",
            ["transport", "reason"],
            registry=r,
        )
        self.requests_failed = Counter(
            "agentwatch_export_requests_failed",
            "Export requests answered with an error",
            ["transport", "reason"],
            registry=r,
        )
        self.spans_stored = Counter(
            "agentwatch_spans_stored", "Spans confirmed written by the store", registry=r
        )
        self.store_write_seconds = Histogram(
            "agentwatch_store_write_seconds",
            "Store insert latency",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.store_write_failures = Counter(
            "agentwatch_store_write_failures",
            "Failed store inserts, by kind",
            ["kind"],
            registry=r,
        )
        self.dead_lettered_batches = Counter(
            "agentwatch_dead_lettered_batches", "Batches the store rejected for good", registry=r
        )
        self.dead_lettered_spans = Counter(
            "agentwatch_dead_lettered_spans", "Spans in dead-lettered batches", registry=r
        )
        self.wal_bytes = Gauge(
            "agentwatch_wal_bytes", "Write-ahead log bytes on disk not yet stored", registry=r
        )
        self.wal_pending_bytes = Gauge(
            "agentwatch_wal_pending_bytes", "Bytes waiting for the next group commit", registry=r
        )
        self.wal_fsyncs = Counter(
            "agentwatch_wal_fsyncs", "Group commits (one fsync each)", registry=r
        )
        self.wal_lag_segments = Gauge(
            "agentwatch_wal_lag_segments", "Sealed log segments waiting for the store", registry=r
        )

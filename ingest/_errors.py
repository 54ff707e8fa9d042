"""Ingest errors, split the Collector's way: permanent (bad data) vs transient (retry).

IngestError
├── PermanentStoreError   the store rejects this batch for good: dead-letter it
├── TransientStoreError   the store is unavailable or slow: retry with backoff
│   └── StoreInUseError   another process holds the embedded data dir
└── OverloadedError       the pipeline is full: the client should retry later
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of every error the ingest pipeline raises on purpose."""


class PermanentStoreError(IngestError):
    """The store rejected the data itself; retrying the same batch cannot succeed."""


class TransientStoreError(IngestError):
    """The store could not take the batch now; the same batch may succeed later."""


class StoreInUseError(TransientStoreError):
    """The embedded data directory is locked by another process."""


class OverloadedError(IngestError):
    """The pipeline has no room; carries how long the client should wait."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

"""Streaming detectors: fed normalized spans as they are stored, ticked by a clock.

`DetectorEngine` runs every detector (zombie_run, runaway_loop) over the same spans;
`DetectorStage` is the engine inside `serve` (fed by ingest, ticked, saved, findings
written to the `findings` table). Thresholds come from `DetectorConfig`.
"""

from detectors._config import AgentSettings, DetectorConfig, DetectorConfigError, parse_duration
from detectors._core import CoreClient, DetectorCore, InlineCore, ProcessCore
from detectors._engine import Detector, DetectorEngine, build_detectors
from detectors._findings import Finding, FindingLog, FindingSink
from detectors._stage import FINDING_COLUMNS, DetectorStage, finding_row

__all__ = [
    "FINDING_COLUMNS",
    "AgentSettings",
    "CoreClient",
    "Detector",
    "DetectorConfig",
    "DetectorConfigError",
    "DetectorCore",
    "DetectorEngine",
    "DetectorStage",
    "Finding",
    "FindingLog",
    "FindingSink",
    "InlineCore",
    "ProcessCore",
    "build_detectors",
    "finding_row",
    "parse_duration",
]

"""The demo's own agentwatch config: thresholds compressed from hours to seconds.

The defaults are tuned for production (a zombie after 2 minutes of silence, tool
failure windows of an hour); here every detector must fire within about a minute,
so the config the demo writes changes a few knobs, and says which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agentwatch._demo._agents import job_descriptions
from detectors import DetectorConfig

# Only what differs from the defaults; `changed_thresholds` prints it against them.
DETECTORS: dict[str, Any] = {
    "zombie_run": {"min_idle": "4s", "idle_multiplier": 3},
    "tool_failure_spike": {
        "min_calls": 5,
        "windows": [{"long": "30s", "short": "10s", "burn_rate": 3, "severity": "error"}],
        "max_p_value": 0.0001,
    },
    "quality_drift": {
        "reference_samples": 20,
        "window": 12,
        "min_samples": 8,
        "max_p_value": 0.001,
        "behaviour": False,
    },
    "change_point": {"min_calls": 10},
}

SECRET = "whsec_ZGVtby1jb25zb2xlLXJlY2VpdmVyLXNlY3JldA=="  # noqa: S105  (a local demo key)


def config_document(alerts_url: str | None) -> dict[str, Any]:
    """The `--config` YAML: demo thresholds, and every finding to the console receiver."""
    if alerts_url is None:
        return {"detectors": DETECTORS}
    return {
        "detectors": DETECTORS,
        "alerts": {
            "allow_private_targets": True,  # the console receiver is on 127.0.0.1
            "receivers": [{"name": "console", "webhook": {"url": alerts_url, "secret": SECRET}}],
            "routes": [{"name": "console", "match": {}, "receivers": ["console"]}],
            "delivery": {"min_backoff": "200ms", "max_backoff": "2s"},
        },
    }


def write_config(directory: Path, alerts_url: str | None) -> tuple[Path, Path]:
    """Write `demo-config.yaml` and `demo-agents.yaml` there; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "demo-config.yaml"
    config.write_text(yaml.safe_dump(config_document(alerts_url), sort_keys=False))
    agents = directory / "demo-agents.yaml"
    agents.write_text(yaml.safe_dump({"agents": job_descriptions()}, sort_keys=False))
    return config, agents


def changed_thresholds() -> list[str]:
    """One line per changed knob: `detectors.zombie_run.min_idle: 120s -> 4s`."""
    defaults = DetectorConfig.from_dict(None).defaults
    demo = DetectorConfig.from_dict(DETECTORS).defaults
    lines = []
    for section, changes in DETECTORS.items():
        before, after = getattr(defaults, section), getattr(demo, section)
        for key, raw in changes.items():
            duration = isinstance(raw, str)  # "4s": shown as a duration, before and after
            old = _show(getattr(before, key), duration)
            new = _show(getattr(after, key), duration)
            lines.append(f"{section}.{key}: {old} -> {new}")
    return lines


def _show(value: Any, duration: bool) -> str:
    if isinstance(value, tuple):  # tool_failure_spike windows
        return ", ".join(f"{_seconds(w.long)}/{_seconds(w.short)} x{w.burn_rate:g}" for w in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    if duration:
        return _seconds(float(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _seconds(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"

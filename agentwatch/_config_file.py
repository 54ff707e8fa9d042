"""The YAML config file (`--config`): detectors, alert routes and model prices.

This floor only checks the file's shape; the detector and alert stages read their
own sections. Unknown keys are an error, named in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agentwatch.settings import ConfigError
from ingest._prices import PriceTable, PriceTableError

_TOP_LEVEL_KEYS = frozenset({"detectors", "alerts", "pricing"})


def load_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path}{where}: not valid YAML") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping")
    unknown = sorted(set(document) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key {unknown[0]!r} "
            f"(known: {', '.join(sorted(_TOP_LEVEL_KEYS))})"
        )
    return document


def load_prices(path: Path | None) -> PriceTable:
    """The shipped price table with the config's `pricing:` entries; errors in one line."""
    overrides = load_config_file(path).get("pricing")
    try:
        return PriceTable.load(overrides=overrides)
    except PriceTableError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None

"""What an entry point imports, in a fresh interpreter: only what its path needs.

Every `agentwatch` command is a new process, and imports were most of its start-up:
scipy.stats alone was ~1 s, the server's packages ~1.5 s more. The CLI's parser (every
command, `--help`, a refused `serve`) loads none of the server, nor the HTTP client
or the settings; the server and its detector process load neither scipy nor
scikit-learn until a detector's test first needs them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CLI_PARSER = "from agentwatch.cli import build_parser; build_parser()"
SERVER = "import agentwatch._serve"
DETECTOR_PROCESS = "import detectors._core"


def loaded(code: str, modules: list[str]) -> list[str]:
    """Those of `modules` that `code` imports, in a new interpreter."""
    check = f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.split()


@pytest.mark.parametrize(
    ("code", "absent"),
    [
        (
            CLI_PARSER,
            [
                "agentwatch._serve",
                "agentwatch.settings",
                "api._app",
                "detectors",
                "ingest",
                "httpx",
                "fastapi",
                "scipy",
                "sklearn",
            ],
        ),
        (SERVER, ["scipy", "sklearn"]),
        (DETECTOR_PROCESS, ["scipy", "sklearn"]),
    ],
    ids=["cli-parser", "server", "detector-process"],
)
def test_an_entry_point_imports_only_what_its_path_needs(code: str, absent: list[str]) -> None:
    assert loaded(code, absent) == []


def test_the_check_sees_what_is_imported() -> None:
    assert loaded(SERVER, ["fastapi", "detectors", "scipy"]) == ["fastapi", "detectors"]

"""`agentwatch serve` as a real process: start-up, configuration errors, signals, drain."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agentwatch import Agentwatch, ConfigError
from agentwatch._serve import _without_password
from ingest import ClickHouseStore
from ingest._prices import PriceTable
from tests.harness import AgentwatchProcess, http, make_settings, serve_command
from tests.otlp import grpc_export, make_request, make_span


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_serve_binds_free_ports_and_writes_endpoints_json(tmp_path: Path) -> None:
    server = AgentwatchProcess(tmp_path / "data").start()
    try:
        endpoints = server.endpoints
        assert set(endpoints) == {"otlp_grpc", "otlp_http", "api"}
        assert endpoints["otlp_grpc"].startswith("127.0.0.1:")
        assert endpoints["otlp_http"].startswith("http://127.0.0.1:")
        assert http().get(f"{endpoints['api']}/readyz").json() == {"status": "ready"}
    finally:
        code, out, err = server.stop()
    assert code == 0
    assert endpoints["api"] in out  # the chosen addresses are printed too
    assert "Traceback" not in err
    assert not (tmp_path / "data" / "endpoints.json").exists()


def test_sigterm_stores_every_acknowledged_span_before_exit(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # A long flush interval: without the drain, these spans would still be in memory.
    server = AgentwatchProcess(data_dir, env={"AGENTWATCH_FLUSH_INTERVAL_S": "30"}).start()
    acknowledged = 0
    for _ in range(20):
        request = make_request([make_span() for _ in range(50)])
        result = grpc_export(server.endpoints["otlp_grpc"], request.SerializeToString())
        assert result.ok
        acknowledged += 50
    server.signal(signal.SIGTERM)
    code, _, err = server.wait()
    assert code == 0, err

    restarted = AgentwatchProcess(data_dir).start()
    try:
        response = http().get(
            f"{restarted.endpoints['api']}/api/v1/traces",
            params={"since": "2026-11-01T00:00:00Z", "limit": 1000},
        )
        traces = response.json()["traces"]
    finally:
        restarted.stop()
    assert sum(t["span_count"] for t in traces) == acknowledged


def test_second_process_on_the_same_data_dir_is_refused_in_one_line(tmp_path: Path) -> None:
    first = AgentwatchProcess(tmp_path / "data").start()
    try:
        second = subprocess.run(
            serve_command(tmp_path / "data"), capture_output=True, text=True, timeout=60
        )
    finally:
        first.stop()
    assert second.returncode == 2
    assert second.stderr.strip().count("\n") == 0
    assert "data dir in use by another agentwatch" in second.stderr


BAD_CONFIGURATIONS = [
    ([], {"AGENTWATCH_RETENTION_DAYS": "soon"}, "AGENTWATCH_RETENTION_DAYS"),
    (["--otlp-grpc", "0.0.0.0:4317"], {}, "AGENTWATCH_INGEST_TOKENS is not set"),
    (["--api", "0.0.0.0:8000"], {}, "AGENTWATCH_API_TOKENS is not set"),
    (["--api", "localhost"], {}, "AGENTWATCH_API"),
    ([], {"AGENTWATCH_INGEST_TOKENS": "no-tenant"}, "AGENTWATCH_INGEST_TOKENS"),
    (["--clickhouse-url", "ftp://x"], {}, "AGENTWATCH_CLICKHOUSE_URL"),
    ([], {"AGENTWATCH_CLICKHOUSE_QUERY_URL": "chdb:///x"}, "AGENTWATCH_CLICKHOUSE_QUERY_URL"),
    (
        [],
        {"AGENTWATCH_CLICKHOUSE_QUERY_URL": "http://ro@localhost:8123"},
        "AGENTWATCH_CLICKHOUSE_QUERY_URL is set but AGENTWATCH_CLICKHOUSE_URL",
    ),
]
BAD_CONFIG_FILES = [
    ("detectors: {}\nalertz: {}\n", "unknown key 'alertz'"),
    ("detectors: [\n", "not valid YAML"),
    (
        "detectors:\n  zombie_run: {min_idle: soon}\n",
        "detectors.zombie_run.min_idle: 'soon' is not a duration",
    ),
    ("detectors:\n  runaway_loop: {max_repeat: 3}\n", "detectors.runaway_loop.max_repeat"),
    (
        "detectors:\n  overrides: {billing: {zombie_run: {min_idle: -1}}}\n",
        "detectors.overrides.billing.zombie_run.min_idle",
    ),
    ("pricing: {model: x}\n", "pricing must be a list of price entries"),
    (
        "pricing:\n  - {model: my-model, input: 1.0}\n",
        "pricing[0] (model 'my-model'): output: Field required",
    ),
    (
        "pricing:\n  - {model: my-model, input: -1, output: 2}\n",
        "pricing[0] (model 'my-model'): input: Input should be greater than or equal to 0",
    ),
]


@pytest.fixture(scope="module")
def refused(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each refused start-up below, by the message it expects, one per core at a time.

    Each is a whole `agentwatch serve` process that spends its ~2 s importing (CPU), so
    they share the cores instead of running one after the other.
    """
    root = tmp_path_factory.mktemp("refused")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTWATCH_", "OTEL_"))}
    commands: dict[str, tuple[list[str], dict[str, str]]] = {}
    for n, (args, env, expected) in enumerate(BAD_CONFIGURATIONS):
        data_dir = root / f"configuration-{n}"
        data_dir.mkdir()
        commands[expected] = (["serve", "--data-dir", str(data_dir), *args], {**clean, **env})
    for n, (content, expected) in enumerate(BAD_CONFIG_FILES):
        config = root / f"config-{n}" / "agentwatch.yaml"
        config.parent.mkdir()
        config.write_text(content)
        data_dir = config.parent / "d"
        commands[expected] = (
            ["serve", "--data-dir", str(data_dir), "--config", str(config)],
            clean,
        )
    assert len(commands) == len(BAD_CONFIGURATIONS) + len(BAD_CONFIG_FILES)  # keys unique
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        running = {
            expected: pool.submit(_run_cli, *argv, env=env)
            for expected, (argv, env) in commands.items()
        }
        return {expected: future.result() for expected, future in running.items()}


@pytest.mark.parametrize(("args", "env", "expected"), BAD_CONFIGURATIONS)
def test_bad_configuration_is_one_line_naming_the_setting(
    refused: dict[str, subprocess.CompletedProcess[str]],
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    result = refused[expected]  # serve --data-dir DIR *args, with env

    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("content", "expected"), BAD_CONFIG_FILES)
def test_bad_config_file_is_one_line(
    refused: dict[str, subprocess.CompletedProcess[str]], content: str, expected: str
) -> None:
    result = refused[expected]  # serve --data-dir DIR --config (a file of `content`)

    assert result.returncode == 2
    assert expected in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_cli(
            "serve",
            "--data-dir",
            str(tmp_path),
            "--api",
            f"127.0.0.1:{port}",
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
        )
    assert result.returncode == 2
    assert f"127.0.0.1:{port}" in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_unwritable_data_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    result = _run_cli("serve", "--data-dir", str(blocker / "data"))

    assert result.returncode == 2
    assert "AGENTWATCH_DATA_DIR" in result.stderr
    assert result.stderr.strip().count("\n") == 0


class StorelessAgentwatch(Agentwatch):
    """An agentwatch whose store never opens (as when chDB is unavailable)."""

    async def _open_store(self, prices: PriceTable) -> ClickHouseStore:
        raise ConfigError("storage unavailable: test")


def test_a_store_that_does_not_open_leaves_no_detector_process(tmp_path: Path) -> None:
    """The detector process starts before the store opens; a refused start stops it."""

    async def start() -> None:
        async with StorelessAgentwatch(make_settings(tmp_path / "data")).running():
            pass

    with pytest.raises(ConfigError, match="storage unavailable"):
        asyncio.run(start())
    detectors = [p for p in multiprocessing.active_children() if p.name == "agentwatch-detectors"]
    assert detectors == []


def test_a_clickhouse_server_that_is_down_at_start_does_not_stop_intake(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    server = AgentwatchProcess(
        tmp_path / "data", "--clickhouse-url", f"http://127.0.0.1:{closed_port}"
    ).start()
    try:
        result = grpc_export(
            server.endpoints["otlp_grpc"], make_request([make_span()]).SerializeToString()
        )
        ready = http().get(f"{server.endpoints['api']}/readyz")
    finally:
        server.kill()
    assert result.ok  # acknowledged: it is in the write-ahead log
    assert ready.status_code == 503
    assert "store is not answering" in ready.json()["problems"]
    assert list((tmp_path / "data" / "wal").glob("*.seg"))


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("http://agentwatch:s3cret@clickhouse:8123", "http://agentwatch:***@clickhouse:8123"),
        ("https://u:p@ch.example.com/db?x=1", "https://u:***@ch.example.com/db?x=1"),
        ("http://clickhouse:8123", "http://clickhouse:8123"),
    ],
)
def test_the_storage_url_is_printed_without_its_password(url: str, printed: str) -> None:
    assert _without_password(url) == printed

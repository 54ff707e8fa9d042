"""`agentwatch serve`: every stage in one process, wired here and only here.

receivers (gRPC, HTTP) -> ExportHandler -> IngestPipeline -> ClickHouseStore
API (FastAPI) reads the same store. SIGTERM/SIGINT drain: the receivers stop taking
requests, every accepted span is stored, then the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import signal
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agentwatch._config_file import load_config_file, load_prices
from agentwatch._http_server import HttpServer, bind_socket
from agentwatch._jobs_watch import JobsWatcher
from agentwatch.settings import ConfigError, Settings
from api import ApiContext, create_app
from api._control import ControlStore
from api.alerts import AlertConfigError, Alerter, AlertsConfig
from collector import (
    LOGS,
    TRACES,
    ExportHandler,
    GrpcReceiver,
    HttpReceiver,
    TokenAuthenticator,
)
from detectors import DetectorConfig, DetectorConfigError, DetectorStage, ProcessCore
from detectors._jobs import JobRegistry, JobsError
from ingest import (
    ClickHouseStore,
    IngestMetrics,
    IngestPipeline,
    PipelineConfig,
    SpanStore,
    StoreInUseError,
    TransientStoreError,
    WalConfig,
    chdb_dsn,
)
from ingest._prices import PriceTable

log = logging.getLogger("agentwatch")


@dataclass(frozen=True)
class Endpoints:
    otlp_grpc: str
    otlp_http: str
    api: str

    def as_json(self) -> dict[str, str]:
        return {"otlp_grpc": self.otlp_grpc, "otlp_http": self.otlp_http, "api": self.api}


class DataDirLock:
    """An exclusive lock on the data dir; the OS releases it even on SIGKILL."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / "agentwatch.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        handle = self._path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ConfigError(
                f"data dir in use by another agentwatch: {self._path.parent.resolve()}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Agentwatch:
    """The running process: build with settings, `async with` to run, `wait()` to serve."""

    def __init__(
        self,
        settings: Settings,
        wrap_store: Callable[[ClickHouseStore], SpanStore] | None = None,
    ) -> None:
        """`wrap_store` puts a wrapper (a fault injector, in tests) around the span store."""
        self.settings = settings
        self._wrap_store = wrap_store
        self.data_dir = settings.data_dir
        self.metrics = IngestMetrics()
        self.endpoints: Endpoints | None = None
        self.alerter: Alerter | None = None
        self.control: ControlStore | None = None
        self.jobs: JobsWatcher | None = None
        self.store: ClickHouseStore | None = None  # the span store, while running
        self._detector_stage: DetectorStage | None = None
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Agentwatch]:
        """Start every stage; on exit, stop intake, drain, and release everything."""
        settings = self.settings
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            probe = self.data_dir / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as exc:
            raise ConfigError(
                f"invalid setting data_dir (AGENTWATCH_DATA_DIR): {self.data_dir}: "
                f"{exc.strerror or exc}"
            ) from None
        detector_section = self._detector_section()
        alerts_config = self._alerts_config()
        prices = load_prices(settings.config)
        jobs_watcher = self._jobs_watcher()
        async with contextlib.AsyncExitStack() as stack:
            lock = DataDirLock(self.data_dir)
            lock.acquire()
            stack.callback(lock.release)
            endpoints_file = self.data_dir / "endpoints.json"
            endpoints_file.unlink(missing_ok=True)
            stack.callback(endpoints_file.unlink, missing_ok=True)
            detector_core = ProcessCore(
                detector_section,
                self.data_dir / "detectors" / "state.json",
                pricing=load_config_file(self.settings.config).get("pricing"),
            )
            # Started before the store opens: its imports (~0.5 s of CPU) run meanwhile, on
            # another core. The stage's shutdown stops it; this, if the stage never started.
            await detector_core.start()
            stack.push_async_callback(detector_core.stop)
            self.store = store = await self._open_store(prices)
            stack.callback(store.close)
            pipeline = self._build_pipeline(store)
            detector_stage = DetectorStage(
                detector_core,
                store,
                watermark_s=pipeline.consumed_until_s,
                registry=self.metrics.registry,
            )
            pipeline.add_consumer(detector_stage)
            self._detector_stage = detector_stage
            self.alerter = None
            if alerts_config.routes:
                self.alerter = Alerter(
                    alerts_config, self.data_dir / "alerts.db", registry=self.metrics.registry
                )
                detector_stage.add_listener(self.alerter.on_finding)
                self.alerter.escalation_of = self._escalation_of
                await self.alerter.start()
                # Stopped after the detectors: every finding they publish is enqueued.
                stack.push_async_callback(self.alerter.stop)
            await detector_stage.start()
            self.control = ControlStore(self.data_dir / "governance.db")
            stack.callback(self.control.close)
            if jobs_watcher is not None:
                self.jobs = jobs_watcher
                await jobs_watcher.start()
                stack.push_async_callback(jobs_watcher.stop)
            # Stopped after the pipeline's drain, so it sees every stored segment.
            stack.push_async_callback(detector_stage.shutdown)
            await pipeline.start()
            stack.push_async_callback(pipeline.shutdown)
            authenticator = TokenAuthenticator(settings.ingest_tokens)
            handlers = [
                ExportHandler(pipeline.accept, authenticator, self.metrics, TRACES),
                ExportHandler(pipeline.accept_logs, authenticator, self.metrics, LOGS),
            ]
            # Stopped in reverse order: receivers first, then the drain, then the API.
            query_store = self._query_store(store)
            if query_store is not store:
                stack.callback(query_store.close)
            api_server = HttpServer(
                create_app(self._api_context(query_store, pipeline), self.metrics.registry),
                _bind(settings.api),
            )
            await api_server.start()
            stack.push_async_callback(api_server.stop)
            stack.push_async_callback(self._log_drain, pipeline)
            otlp_http = HttpServer(
                HttpReceiver(handlers, settings.max_request_bytes), _bind(settings.otlp_http)
            )
            await otlp_http.start()
            stack.push_async_callback(otlp_http.stop)
            grpc_receiver = GrpcReceiver(handlers, settings.max_request_bytes)
            try:
                grpc_address = await grpc_receiver.start(settings.otlp_grpc)
            except (OSError, RuntimeError) as exc:
                raise ConfigError(f"cannot bind otlp_grpc {settings.otlp_grpc}: {exc}") from None
            stack.push_async_callback(grpc_receiver.stop, 5.0)
            self.endpoints = Endpoints(
                otlp_grpc=grpc_address,
                otlp_http=f"http://{otlp_http.address}",
                api=f"http://{api_server.address}",
            )
            _write_atomically(endpoints_file, json.dumps(self.endpoints.as_json()))
            yield self

    async def _open_store(self, prices: PriceTable) -> ClickHouseStore:
        settings = self.settings
        store = ClickHouseStore(
            settings.clickhouse_url or chdb_dsn(self.data_dir),
            database=settings.clickhouse_database,
            retention_days=settings.retention_days,
            prices=prices,
        )
        try:
            await asyncio.to_thread(store.open)
        except StoreInUseError as exc:
            raise ConfigError(str(exc)) from None
        except TransientStoreError as exc:
            if store.is_embedded:
                raise ConfigError(f"storage unavailable: {exc}") from None
            # A server may come up after us (compose, restarts): accept into the log
            # now; the first insert creates the schema. /readyz says what is missing.
            log.warning("ClickHouse not reachable yet, accepting into the log: %s", exc)
        return store

    def _query_store(self, store: ClickHouseStore) -> ClickHouseStore:
        """The store the API reads through: a read-only user's when one is configured."""
        if not self.settings.clickhouse_query_url:
            return store
        # Never opened: opening creates the schema, which a read-only user cannot.
        return ClickHouseStore(
            self.settings.clickhouse_query_url, database=self.settings.clickhouse_database
        )

    def _jobs_watcher(self) -> JobsWatcher | None:
        """The job descriptions, loaded now so a mistake stops start-up in one line."""
        path = self.settings.agents
        if path is None:
            return None
        watcher = JobsWatcher(path, self._apply_jobs, self._audit)
        try:
            watcher.load_first()
        except JobsError as exc:
            raise ConfigError(f"invalid setting agents (AGENTWATCH_AGENTS): {exc}") from None
        return watcher

    async def _apply_jobs(self, registry: JobRegistry) -> None:
        assert self._detector_stage is not None
        await self._detector_stage.set_jobs(registry.as_data())

    def _escalation_of(self, agent: str) -> str:
        """The alert route an agent's job description names for escalations ("": none)."""
        registry = self.jobs.registry if self.jobs is not None else None
        job = registry.get(agent) if registry is not None else None
        return job.escalation if job is not None else ""

    def _audit(self, action: str, target: str, details: Any) -> None:
        if self.control is not None:
            # "*": a registry-wide event, listed for every tenant.
            self.control.record("*", "agentwatch", action, target, details)

    def _alerts_config(self) -> AlertsConfig:
        """The `alerts:` section, validated (and receiver URLs SSRF-checked) at start."""
        section = load_config_file(self.settings.config).get("alerts")
        try:
            return AlertsConfig.from_dict(section)
        except AlertConfigError as exc:
            raise ConfigError(f"config file {self.settings.config}: {exc}") from None

    def _detector_section(self) -> dict[str, Any] | None:
        """The `detectors:` section, validated here so a mistake stops start-up."""
        section: dict[str, Any] | None = load_config_file(self.settings.config).get("detectors")
        try:
            DetectorConfig.from_dict(section)
        except DetectorConfigError as exc:
            raise ConfigError(f"config file {self.settings.config}: {exc}") from None
        return section

    def _build_pipeline(self, store: ClickHouseStore) -> IngestPipeline:
        settings = self.settings
        wal = WalConfig(
            max_bytes=settings.wal_max_bytes,
            max_pending_bytes=settings.max_pending_bytes,
            seal_spans=settings.batch_max_spans,
            seal_age_s=settings.flush_interval_s,
        )
        span_store: SpanStore = self._wrap_store(store) if self._wrap_store else store
        config = PipelineConfig(wal=wal, drain_timeout_s=settings.drain_timeout_s)
        return IngestPipeline(span_store, config, self.metrics, self.data_dir)

    def _api_context(self, store: ClickHouseStore, pipeline: IngestPipeline) -> ApiContext:
        return ApiContext(
            store=store,
            api_tokens=self.settings.api_tokens,
            readiness_checks=[pipeline.readiness_problems],
            alerts=self.alerter.outbox if self.alerter is not None else None,
            control=self.control,
            jobs=lambda: self.jobs.registry if self.jobs is not None else None,
            accept_logs=pipeline.accept_logs,
        )

    @staticmethod
    async def _log_drain(pipeline: IngestPipeline) -> None:
        log.info("draining: %d log segments to store", pipeline.backlog_segments)


def _bind(address: str) -> socket.socket:
    try:
        return bind_socket(address)
    except OSError as exc:
        raise ConfigError(f"cannot bind {address}: {exc.strerror or exc}") from None


def _without_password(url: str) -> str:
    """The URL as it may be printed: a password in it becomes `***`."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then drain and exit."""
    app = Agentwatch(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, app.request_stop)
    async with app.running():
        assert app.endpoints is not None
        # The receive path allocates a few small objects per span; with the default
        # threshold (700) the collector runs every few dozen spans. Everything loaded
        # at start-up is frozen out of collection, and young collections run less often.
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        storage = (
            _without_password(settings.clickhouse_url)
            if settings.clickhouse_url
            else f"chDB {settings.data_dir / 'db'}"
        )
        print(
            f"agentwatch serving  OTLP/gRPC {app.endpoints.otlp_grpc}  "
            f"OTLP/HTTP {app.endpoints.otlp_http}  API {app.endpoints.api}  storage {storage}",
            flush=True,
        )
        await app.wait()
        print("agentwatch: shutting down, storing every accepted span…", flush=True)

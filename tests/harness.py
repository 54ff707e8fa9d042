"""Test harness: run agentwatch for real, in a thread or a subprocess, and poll for results."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx

from agentwatch import Agentwatch, Endpoints, Settings

T = TypeVar("T")

_clients = threading.local()


def http() -> httpx.Client:
    """This thread's HTTP client for the tests' requests (10 s timeout, no cookies kept).

    `httpx.get()` and friends build a client per call, TLS context included: ~50 ms of
    CPU each, which a polling loop would spend over and over, beside the servers under
    test. One client per thread keeps its connections too.
    """
    client: httpx.Client | None = getattr(_clients, "client", None)
    if client is None:
        no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
        client = _clients.client = httpx.Client(timeout=10, cookies=no_cookies)
    return client


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "otlp_grpc": "127.0.0.1:0",
        "otlp_http": "127.0.0.1:0",
        "api": "127.0.0.1:0",
        "flush_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


def wait_for(
    condition: Callable[[], T | None], timeout_s: float = 30.0, interval_s: float = 0.05
) -> T:
    """Poll until `condition()` is truthy and return it; fail with the last value."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last value: {last!r})")


class AgentwatchThread:
    """`Agentwatch.running()` on its own event loop in a background thread."""

    def __init__(self, settings: Settings, **app_kwargs: Any) -> None:
        self.app = Agentwatch(settings, **app_kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="agentwatch-test", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoints(self) -> Endpoints:
        assert self.app.endpoints is not None
        return self.app.endpoints

    @property
    def grpc_target(self) -> str:
        return self.endpoints.otlp_grpc

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            async with self.app.running():
                self._started.set()
                await self.app.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()

    def __enter__(self) -> AgentwatchThread:
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.app.request_stop)
        self._thread.join(60)
        if self._error is not None:
            raise self._error

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def api(self, path: str, **params: Any) -> httpx.Response:
        return http().get(f"{self.endpoints.api}{path}", params=params)


def serve_command(data_dir: Path, *extra_args: str) -> list[str]:
    """`agentwatch serve` on free loopback ports, as a command line."""
    free = "127.0.0.1:0"
    return [
        *(sys.executable, "-m", "agentwatch.cli", "serve", "--data-dir", str(data_dir)),
        *("--otlp-grpc", free, "--otlp-http", free, "--api", free),
        *extra_args,
    ]


class AgentwatchProcess:
    """`agentwatch serve` as a real subprocess (for signals, SIGKILL and the CLI).

    Its output goes to files, not pipes: a long run must never block on a full pipe.
    """

    def __init__(self, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None):
        self.data_dir = data_dir
        self.args = serve_command(data_dir, *extra_args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoints: dict[str, str] = {}
        self._out: IO[bytes] | None = None
        self._err: IO[bytes] | None = None

    def start(self, timeout_s: float = 60) -> AgentwatchProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        endpoints_file = self.data_dir / "endpoints.json"
        endpoints_file.unlink(missing_ok=True)  # a killed predecessor leaves a stale one
        # Closed with the object: they must outlive this method, so no `with` here.
        self._out = tempfile.TemporaryFile()  # noqa: SIM115
        self._err = tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self._out, stderr=self._err)

        def ready() -> dict[str, str] | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"agentwatch exited: {self._read_output()[1]}")
            if endpoints_file.exists():
                loaded: dict[str, str] = json.loads(endpoints_file.read_text())
                return loaded
            return None

        self.endpoints = wait_for(ready, timeout_s)
        return self

    def _read_output(self) -> tuple[str, str]:
        texts = []
        for handle in (self._out, self._err):
            assert handle is not None
            handle.seek(0)
            texts.append(handle.read().decode("utf-8", "replace"))
        return texts[0], texts[1]

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 60) -> tuple[int, str, str]:
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout_s)
        out, err = self._read_output()
        return code, out, err

    def stop(self) -> tuple[int, str, str]:
        self.signal(signal.SIGTERM)
        return self.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

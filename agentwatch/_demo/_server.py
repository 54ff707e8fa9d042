"""Where the demo's telemetry goes: its own agentwatch in this process, or a running one.

`EmbeddedAgentwatch` runs `Agentwatch.running()` (embedded chDB, free loopback ports)
on its own event loop in a background thread. `FindingsPoller` reads
`/api/v1/findings` every second, as a person or a dashboard would.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from agentwatch import Agentwatch, Endpoints, Settings

Finding = dict[str, Any]


class EmbeddedAgentwatch:
    """`with EmbeddedAgentwatch(settings) as server:` — serving until the block ends."""

    def __init__(self, settings: Settings) -> None:
        self.app = Agentwatch(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="demo-agentwatch", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoints(self) -> Endpoints:
        assert self.app.endpoints is not None
        return self.app.endpoints

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            async with self.app.running():
                self._started.set()
                await self.app.wait()

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the main thread
            self._error = exc
        finally:
            self._started.set()

    def __enter__(self) -> EmbeddedAgentwatch:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop intake, store every accepted span, release the data dir."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self.app.request_stop)
        self._thread.join(120)


class FindingsPoller:
    """Reads the findings opened since `since` once a second; reports new versions."""

    def __init__(
        self,
        api: str,
        token: str | None,
        since: float,
        on_change: Callable[[Finding, Finding | None], None],
        interval_s: float = 1.0,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(base_url=api, headers=headers, timeout=10)
        self._since = since
        self._on_change = on_change
        self._interval_s = interval_s
        self.findings: dict[str, Finding] = {}
        self.error = ""  # the last failure to read, for the view
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="demo-findings", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.poll()

    def poll(self) -> None:
        """One read of the API; `on_change` for every finding new or changed since the last."""
        since = datetime.fromtimestamp(self._since, UTC).isoformat()
        try:
            response = self._client.get("/api/v1/findings", params={"since": since, "limit": 1000})
            response.raise_for_status()
            found: list[Finding] = response.json()["findings"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.error = f"findings API: {exc}"
            return
        self.error = ""
        with self._lock:  # the final poll may run beside the background one
            for finding in sorted(found, key=lambda f: str(f["opened_at"])):
                if _opened_before(finding, self._since):
                    continue  # an earlier incident, still open on a shared agentwatch
                previous = self.findings.get(finding["id"])
                if previous is None or _version(previous) != _version(finding):
                    self.findings[finding["id"]] = finding
                    self._on_change(finding, previous)


def _version(finding: Finding) -> tuple[str, str, str | None]:
    return (finding["state"], finding["updated_at"], finding["resolved_at"])


def _opened_before(finding: Finding, moment: float) -> bool:
    return datetime.fromisoformat(finding["opened_at"]).timestamp() < moment - 1.0


def wait_until_ready(api: str, token: str | None, timeout_s: float) -> str:
    """'' once `api` answers /healthz, else what went wrong."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout_s
    problem = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"{api}/api/v1/findings?limit=1", headers=headers, timeout=5)
        except httpx.HTTPError as exc:
            problem = f"{api} does not answer: {exc}"
        else:
            if response.status_code == 200:
                return ""
            problem = f"{api}/api/v1/findings answered HTTP {response.status_code}"
            if response.status_code in (401, 403):
                return problem + " (set AGENTWATCH_API_TOKEN)"
        time.sleep(0.5)
    return problem

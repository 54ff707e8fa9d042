"""Job descriptions at run time: loaded at start, re-read whenever the files change.

A change that does not load (bad YAML, a bad value) keeps the last good registry in
force and is logged and audited; the next good edit is taken up as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from detectors._jobs import JobRegistry, JobsError, load_jobs

log = logging.getLogger("agentwatch.jobs")

Apply = Callable[[JobRegistry], Awaitable[None]]


def files_signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when the job description files do (names, sizes, mtimes)."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    signature = []
    for file in files:
        with contextlib.suppress(OSError):
            stat = file.stat()
            signature.append((file.name, stat.st_size, stat.st_mtime_ns))
    return tuple(signature)


class JobsWatcher:
    def __init__(
        self,
        path: Path,
        apply: Apply,
        audit: Callable[[str, str, Any], None],
        interval_s: float = 2.0,
    ) -> None:
        self._path = path
        self._apply = apply
        self._audit = audit  # (action, target, details)
        self._interval_s = interval_s
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._task: asyncio.Task[None] | None = None
        self.registry: JobRegistry | None = None

    def load_first(self) -> JobRegistry:
        """At start: a problem here stops start-up (JobsError, one line)."""
        self._signature = files_signature(self._path)
        self.registry = load_jobs(self._path)
        return self.registry

    async def start(self) -> None:
        assert self.registry is not None, "load_first() first"
        await self._take(self.registry)
        self._task = asyncio.create_task(self._watch(), name="agentwatch-jobs-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            signature = await asyncio.to_thread(files_signature, self._path)
            if signature == self._signature:
                continue
            self._signature = signature
            try:
                registry = await asyncio.to_thread(load_jobs, self._path)
            except JobsError as exc:
                log.error("job descriptions not reloaded, the previous ones stay: %s", exc)
                self._audit("jobs_rejected", str(self._path), {"error": str(exc)})
                continue
            if self.registry is None or registry.digest != self.registry.digest:
                await self._take(registry)

    async def _take(self, registry: JobRegistry) -> None:
        self.registry = registry
        await self._apply(registry)
        details = {"agents": sorted(registry.jobs), "digest": registry.digest}
        self._audit("jobs_loaded", str(self._path), details)
        log.info("job descriptions loaded: %d agent(s) from %s", len(registry.jobs), self._path)

"""The kill switch, agent side: a cached "is this agent paused?" answer per agent.

The agent's thread only ever reads the cache (and queues a refresh when its answer is
older than the interval); one daemon thread per `Controller` asks agentwatch, one agent
at a time, in the order asked. So a slow or unreachable agentwatch never slows the agent.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from agentwatch_sdk._attributes import SCOPE_VERSION

_log = logging.getLogger(__name__)

# Bounded memory: the least recently checked agents are forgotten first.
MAX_AGENTS: Final = 256
THREAD_NAME: Final = "agentwatch-control"
_MAX_BODY: Final = 64 * 1024


class AgentPaused(RuntimeError):
    """agentwatch says this agent is paused: stop at this step.

    Raised by `heartbeat()` and `check_paused()`; `agent`, `reason` ("" when none was
    given), `paused_at` (aware datetime, or None when agentwatch did not say) and
    `paused_by` ("" when unknown) come from agentwatch's answer.
    """

    def __init__(
        self,
        agent: str,
        reason: str = "",
        paused_at: datetime | None = None,
        paused_by: str = "",
    ) -> None:
        self.agent = agent
        self.reason = reason
        self.paused_at = paused_at
        self.paused_by = paused_by
        detail = f": {reason}" if reason else ""
        super().__init__(f"agent {agent!r} is paused in agentwatch{detail}")

    def __reduce__(self) -> tuple[type[AgentPaused], tuple[str, str, datetime | None, str]]:
        return type(self), (self.agent, self.reason, self.paused_at, self.paused_by)


@dataclass(frozen=True)
class Answer:
    """What `GET /api/v1/agents/{name}/control` said."""

    paused: bool
    reason: str = ""
    paused_at: datetime | None = None
    paused_by: str = ""


def parse_answer(body: bytes) -> Answer:
    """The answer in a response body; ValueError unless it is an object with a bool `paused`."""
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("paused"), bool):
        raise ValueError("not a control answer: no boolean 'paused'")
    return Answer(
        paused=document["paused"],
        reason=_text(document.get("reason")),
        paused_at=_timestamp(document.get("paused_at")),
        paused_by=_text(document.get("paused_by")),
    )


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _timestamp(value: object) -> datetime | None:
    """An ISO 8601 time (`Z` accepted); None when absent or unreadable: it is only detail."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def base_url(url: str) -> str:
    """agentwatch's API base URL without a trailing slash; ValueError unless http(s)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            "control_url (or AGENTWATCH_CONTROL_URL) must be agentwatch's API base URL, "
            f"like http://127.0.0.1:8000, got {url!r}"
        )
    return url.rstrip("/")


def control_url(base: str, agent: str) -> str:
    """The control endpoint of one agent: its name is one path segment (`/` → `%2F`)."""
    return f"{base}/api/v1/agents/{urllib.parse.quote(agent, safe='')}/control"


@dataclass(slots=True)
class _Entry:
    answer: Answer | None = None  # the last answer agentwatch gave; None: none yet
    checked_at: float | None = None  # when the last refresh ended, answered or not
    refreshing: bool = False  # queued or in flight


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is a misconfigured URL: fail (and keep the token) instead of following."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Controller:
    """Per-agent answers, refreshed on a single daemon thread started on first need."""

    def __init__(
        self,
        url: str,
        token: str | None,
        interval_s: float,
        timeout_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.url = base_url(url)
        self._token = token
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._clock = clock
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._cond = threading.Condition()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._queue: deque[str] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def check(self, agent: str) -> None:
        """Raise AgentPaused if the cached answer says paused; never waits on the network."""
        try:
            answer = self._look_up(agent)
        except Exception:
            _log.debug("agentwatch control: checking %r failed", agent, exc_info=True)
            return
        if answer is not None and answer.paused:
            raise AgentPaused(agent, answer.reason, answer.paused_at, answer.paused_by)

    def close(self) -> None:
        """Stop the poller (after its request in flight, if any); idempotent."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify_all()

    def _look_up(self, agent: str) -> Answer | None:
        now = self._clock()
        with self._cond:
            entry = self._entries.get(agent)
            if entry is None:
                entry = self._entries[agent] = _Entry()
                if len(self._entries) > MAX_AGENTS:
                    self._entries.popitem(last=False)
            else:
                self._entries.move_to_end(agent)
            due = entry.checked_at is None or now - entry.checked_at >= self._interval_s
            if due and not entry.refreshing and not self._closed:
                self._schedule(agent, entry)
            return entry.answer

    def _schedule(self, agent: str, entry: _Entry) -> None:
        """Queue a refresh (lock held); a full queue skips it: the next check asks again."""
        if len(self._queue) >= MAX_AGENTS:
            return
        entry.refreshing = True
        self._queue.append(agent)
        if self._thread is None or not self._thread.is_alive():  # not yet, or lost in a fork
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()
        self._cond.notify()

    def _run(self) -> None:
        while (agent := self._next()) is not None:
            try:
                answer: Answer | None = self._fetch(agent)
            except Exception as exc:  # refused, timeout, HTTP error, bad JSON: keep the last
                _log.debug("agentwatch control: no answer for %r from %s: %r", agent, self.url, exc)
                answer = None
            self._record(agent, answer)

    def _next(self) -> str | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            return None if self._closed else self._queue.popleft()

    def _fetch(self, agent: str) -> Answer:
        request = urllib.request.Request(  # noqa: S310  (base_url() admits http(s) only)
            control_url(self.url, agent),
            headers={"accept": "application/json", "user-agent": f"agentwatch-sdk/{SCOPE_VERSION}"},
        )
        if self._token:
            request.add_unredirected_header("authorization", f"Bearer {self._token}")
        with self._opener.open(request, timeout=self._timeout_s) as response:
            body = response.read(_MAX_BODY + 1)
        if len(body) > _MAX_BODY:
            raise ValueError(f"control answer over {_MAX_BODY} bytes")
        return parse_answer(body)

    def _record(self, agent: str, answer: Answer | None) -> None:
        with self._cond:
            entry = self._entries.get(agent)
            if entry is None:  # forgotten meanwhile
                return
            entry.refreshing = False
            entry.checked_at = self._clock()
            previous = entry.answer
            if answer is not None:
                entry.answer = answer
        if answer is not None and answer.paused != (previous is not None and previous.paused):
            _log.info(
                "agentwatch control: agent %r %s",
                agent,
                f"paused ({answer.reason or 'no reason given'})" if answer.paused else "resumed",
            )

"""Process-wide settings: which tracer provider, how often to heartbeat, how much to
record, and where to ask whether an agent is paused."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable

from opentelemetry import trace

from agentwatch_sdk._attributes import SCOPE_NAME, SCOPE_VERSION
from agentwatch_sdk._control import Controller

_log = logging.getLogger(__name__)

CONTROL_URL_ENV = "AGENTWATCH_CONTROL_URL"
CONTROL_TOKEN_ENV = "AGENTWATCH_CONTROL_TOKEN"  # noqa: S105  (a variable's name)


class Settings:
    """One `configure()` call's values; the tracer is resolved on first use."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        heartbeat_interval_s: float,
        max_argument_chars: int,
        clock: Callable[[], float],
        control: Controller | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_argument_chars = max_argument_chars
        self.clock = clock
        self.control = control  # None: no kill switch
        self._tracer: trace.Tracer | None = None

    def tracer(self) -> trace.Tracer:
        """The SDK's tracer. Without a provider: the global one (a proxy until it is set)."""
        if self._tracer is None:
            self._tracer = trace.get_tracer(
                SCOPE_NAME, SCOPE_VERSION, tracer_provider=self.tracer_provider
            )
        return self._tracer


_lock = threading.Lock()
_current: Settings | None = None  # built on first use (see `current`) or by `configure`


def configure(
    tracer_provider: trace.TracerProvider | None = None,
    heartbeat_interval_s: float = 5.0,
    max_argument_chars: int = 4096,
    *,
    control_url: str | None = None,
    control_token: str | None = None,
    control_interval_s: float = 2.0,
    control_timeout_s: float = 1.0,
    clock: Callable[[], float] | None = None,
) -> None:
    """Set up agentwatch_sdk; optional — the defaults use the global tracer provider.

    - `tracer_provider`: where heartbeat and tool-call spans go; `None` means the global
      provider (`opentelemetry.trace.set_tracer_provider`), even one set later.
    - `heartbeat_interval_s`: at most one heartbeat marker per (trace, thread) in this
      many seconds; 0 emits on every call.
    - `max_argument_chars`: `gen_ai.tool.call.arguments` is cut to this many characters
      (its hash always covers the full arguments); 0 records no argument text at all.
    - `control_url`: agentwatch's API base URL (e.g. ``"http://127.0.0.1:8000"``) to
      turn on the kill switch; `None` reads ``AGENTWATCH_CONTROL_URL``, and unset or
      ``""`` means no kill switch (the default).
    - `control_token`: agentwatch API token sent as ``authorization: Bearer …``; `None`
      reads ``AGENTWATCH_CONTROL_TOKEN``; unset or ``""`` sends none.
    - `control_interval_s`: how old an agent's cached paused/running answer may get
      before a refresh is started in the background.
    - `control_timeout_s`: socket timeout of each background request to agentwatch.
    - `clock`: monotonic seconds for the heartbeat rate limit and the control cache
      (tests inject their own).

    Calling it again replaces every setting and forgets the heartbeat rate-limit state
    and the cached control answers (its background poller stops).
    A bad value raises `ValueError` here, at set-up, never later inside the agent's loop.
    """
    if not heartbeat_interval_s >= 0:  # also rejects NaN
        raise ValueError(f"heartbeat_interval_s must be >= 0, got {heartbeat_interval_s!r}")
    if max_argument_chars < 0:
        raise ValueError(f"max_argument_chars must be >= 0, got {max_argument_chars!r}")
    clock = clock or time.monotonic
    control = _controller(control_url, control_token, control_interval_s, control_timeout_s, clock)
    settings = Settings(
        tracer_provider, float(heartbeat_interval_s), int(max_argument_chars), clock, control
    )
    _replace(settings)


def current() -> Settings:
    """The settings of the last `configure()`; before any, the defaults (and environment)."""
    settings = _current
    if settings is None:
        try:
            control = _controller(None, None, 2.0, 1.0, time.monotonic)
        except ValueError as exc:  # never raise inside the agent's loop: no kill switch
            _log.warning("agentwatch_sdk: kill switch off: %s", exc)
            control = None
        with _lock:
            if _current is None:
                _install(Settings(None, 5.0, 4096, time.monotonic, control))
            elif control is not None:
                control.close()  # configure() won the race; this one never started
            settings = _current
        assert settings is not None
    return settings


def _replace(settings: Settings) -> None:
    with _lock:
        previous = _current
        _install(settings)
    if previous is not None and previous.control is not None:
        previous.control.close()


def _install(settings: Settings) -> None:
    global _current
    _current = settings


def _controller(
    url: str | None,
    token: str | None,
    interval_s: float,
    timeout_s: float,
    clock: Callable[[], float],
) -> Controller | None:
    """The kill switch's poller, or None when no URL is given (argument or environment)."""
    url = (os.environ.get(CONTROL_URL_ENV, "") if url is None else url).strip()
    token = (os.environ.get(CONTROL_TOKEN_ENV, "") if token is None else token).strip()
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"control_interval_s must be > 0, got {interval_s!r}")
    if not (math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"control_timeout_s must be > 0, got {timeout_s!r}")
    if token and not (token.isascii() and token.isprintable() and " " not in token):
        raise ValueError(
            f"control_token ({CONTROL_TOKEN_ENV}) must be printable ASCII without spaces"
        )
    if not url:
        return None
    return Controller(url, token or None, float(interval_s), float(timeout_s), clock)

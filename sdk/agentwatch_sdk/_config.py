"""Process-wide settings: which tracer provider, how often to heartbeat, how much to record."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from opentelemetry import trace

from agentwatch_sdk._attributes import SCOPE_NAME, SCOPE_VERSION


class Settings:
    """One `configure()` call's values; the tracer is resolved on first use."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None,
        heartbeat_interval_s: float,
        max_argument_chars: int,
        clock: Callable[[], float],
    ) -> None:
        self.tracer_provider = tracer_provider
        self.heartbeat_interval_s = heartbeat_interval_s
        self.max_argument_chars = max_argument_chars
        self.clock = clock
        self._tracer: trace.Tracer | None = None

    def tracer(self) -> trace.Tracer:
        """The SDK's tracer. Without a provider: the global one (a proxy until it is set)."""
        if self._tracer is None:
            self._tracer = trace.get_tracer(
                SCOPE_NAME, SCOPE_VERSION, tracer_provider=self.tracer_provider
            )
        return self._tracer


_lock = threading.Lock()
_current = Settings(None, 5.0, 4096, time.monotonic)


def configure(
    tracer_provider: trace.TracerProvider | None = None,
    heartbeat_interval_s: float = 5.0,
    max_argument_chars: int = 4096,
    *,
    clock: Callable[[], float] | None = None,
) -> None:
    """Set up agentwatch_sdk; optional — the defaults use the global tracer provider.

    - `tracer_provider`: where heartbeat and tool-call spans go; `None` means the global
      provider (`opentelemetry.trace.set_tracer_provider`), even one set later.
    - `heartbeat_interval_s`: at most one heartbeat marker per (trace, thread) in this
      many seconds; 0 emits on every call.
    - `max_argument_chars`: `gen_ai.tool.call.arguments` is cut to this many characters
      (its hash always covers the full arguments); 0 records no argument text at all.
    - `clock`: monotonic seconds for the heartbeat rate limit (tests inject their own).

    Calling it again replaces every setting and forgets the heartbeat rate-limit state.
    A bad value raises `ValueError` here, at set-up, never later inside the agent's loop.
    """
    if not heartbeat_interval_s >= 0:  # also rejects NaN
        raise ValueError(f"heartbeat_interval_s must be >= 0, got {heartbeat_interval_s!r}")
    if max_argument_chars < 0:
        raise ValueError(f"max_argument_chars must be >= 0, got {max_argument_chars!r}")
    global _current
    with _lock:
        _current = Settings(
            tracer_provider,
            float(heartbeat_interval_s),
            int(max_argument_chars),
            clock or time.monotonic,
        )


def current() -> Settings:
    return _current

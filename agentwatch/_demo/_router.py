"""One tracer provider per simulated agent, though agentwatch_sdk takes one per process.

`agentwatch_sdk.configure(tracer_provider=...)` names the provider its heartbeats and
tool-call spans go through: one per process, as in a real deployment where each agent
is its own process. The demo runs four agents in one process, each with its own
provider (its own `service.name` and instance), so the SDK is given this router: it
starts each span through the provider of the agent whose thread asks.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace


class ProviderRouter(trace.TracerProvider):
    """A TracerProvider that delegates to the provider bound to the calling thread."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._fallback = trace.NoOpTracerProvider()

    def bind(self, provider: trace.TracerProvider) -> None:
        """Spans the SDK starts on this thread go through `provider` from now on."""
        self._local.provider = provider
        self._local.tracers = {}

    def tracer_for(self, name: str, version: str | None, schema_url: str | None) -> trace.Tracer:
        provider: trace.TracerProvider | None = getattr(self._local, "provider", None)
        if provider is None:
            return self._fallback.get_tracer(name, version, schema_url)
        tracers: dict[tuple[str, str | None], trace.Tracer] = self._local.tracers
        key = (name, version)
        if key not in tracers:
            tracers[key] = provider.get_tracer(name, version, schema_url)
        return tracers[key]

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Any = None,
    ) -> trace.Tracer:
        return _RoutedTracer(
            self, instrumenting_module_name, instrumenting_library_version, schema_url
        )


class _RoutedTracer(trace.Tracer):
    def __init__(
        self, router: ProviderRouter, name: str, version: str | None, schema_url: str | None
    ) -> None:
        self._router = router
        self._scope = (name, version, schema_url)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._router.tracer_for(*self._scope).start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._router.tracer_for(*self._scope).start_as_current_span(*args, **kwargs)

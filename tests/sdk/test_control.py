"""The kill switch, agent side: heartbeat()/check_paused() against a real control endpoint.

The endpoint is a real HTTP server on loopback with a switchable answer per agent; spans
come from the real OpenTelemetry SDK. Waiting is polling with a deadline, calling
heartbeat() in the loop as an agent would. Where a test must show that something did
*not* happen, it asks for a sentinel agent afterwards: the SDK's single poller serves
requests in the order they were queued, so once the sentinel's request arrives, any
request queued before it has arrived too.
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import pytest
from agentwatch_sdk import AgentPaused, _config, _control, check_paused, configure, heartbeat

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from tests.sdk.support import GENAI_AGENT, FakeClock, Pipeline

AGENT = GENAI_AGENT["gen_ai.agent.name"]
PAUSED_AT = "2026-11-24T15:04:05.123Z"
DEADLINE_S = 10.0
FAST_S = 0.01  # control_interval_s: refresh as soon as the last answer is in
_PATH = re.compile(r"/api/v1/agents/(?P<name>[^/]+)/control")


class ControlServer:
    """agentwatch's `GET /api/v1/agents/{name}/control` with a switchable state.

    `mode`: "ok" answers; "error" 500; "garbage" 200 with a body that is not JSON;
    "unauthorized" 401; "redirect" 307 to the control URL of the agent "elsewhere".
    With `token`, a request without that bearer token gets 401. With `hold` set, each
    request waits on it before answering (the test sets it).
    """

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.mode = "ok"
        self.paused: dict[str, str] = {}  # agent -> reason
        self.hold: threading.Event | None = None
        self.paths: list[str] = []  # raw request paths, in arrival order
        self.authorizations: list[str | None] = []
        self.answered = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def agents(self) -> list[str]:
        with self._lock:
            return [_agent_in(path) for path in self.paths]

    def asked(self, agent: str) -> int:
        return self.agents().count(agent)

    def close(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        """The status and body for one request; the request is recorded first."""
        with self._lock:
            self.paths.append(path)
            self.authorizations.append(authorization)
        if self.hold is not None:
            self.hold.wait()
        if self.mode == "unauthorized" or (
            self.token is not None and authorization != f"Bearer {self.token}"
        ):
            return 401, b'{"detail": "unauthorized"}'
        if self.mode == "error":
            return 500, b"Internal Server Error"
        if self.mode == "garbage":
            return 200, b"<html>not json</html>"
        if self.mode == "redirect":
            return 307, b""
        agent = _agent_in(path)
        reason = self.paused.get(agent)
        answer = {
            "agent": agent,
            "paused": reason is not None,
            "reason": reason or "",
            "paused_at": PAUSED_AT if reason is not None else None,
            "paused_by": "acme" if reason is not None else None,
        }
        return 200, json.dumps(answer).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._answer(self.path, self.headers.get("authorization"))
                try:
                    self.send_response(status)
                    if status == 307:
                        self.send_header("location", "/api/v1/agents/elsewhere/control")
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (its timeout)
                    return
                with server._lock:
                    server.answered += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def _agent_in(path: str) -> str:
    match = _PATH.fullmatch(path)
    assert match is not None, path
    return unquote(match["name"])


@pytest.fixture(autouse=True)
def _no_environment_and_no_leaked_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Start without the kill switch's (or a proxy's) variables; end with no poller left."""
    for name in ("AGENTWATCH_CONTROL_URL", "AGENTWATCH_CONTROL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield
    configure()
    for thread in control_threads():
        thread.join(DEADLINE_S)
    assert control_threads() == [], "a poller outlived its configuration"


@pytest.fixture
def server() -> Iterator[ControlServer]:
    control = ControlServer()
    yield control
    control.close()


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


def poll(condition: Callable[[], object], what: str) -> None:
    """An agent's loop: a step (the condition) every few ms until it holds, or fail."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S}s: {what}"
        time.sleep(0.005)


def beat_until(condition: Callable[[], object], what: str) -> None:
    """heartbeat() on every step (so it must not raise), until `condition` holds."""

    def step() -> object:
        heartbeat()
        return condition()

    poll(step, what)


def until_paused(call: Callable[[], object] = heartbeat) -> AgentPaused:
    """`call` on every step until it raises AgentPaused."""
    caught: list[AgentPaused] = []

    def step() -> bool:
        try:
            call()
        except AgentPaused as exc:
            caught.append(exc)
        return bool(caught)

    poll(step, f"{call} raised AgentPaused")
    return caught[0]


def beat_until_running() -> None:
    def step() -> bool:
        try:
            heartbeat()
        except AgentPaused:
            return False
        return True

    poll(step, "heartbeat passed")


def await_sentinel(server: ControlServer, name: str) -> None:
    """Everything queued before now has reached the server (the poller is FIFO)."""
    check_paused(name)
    poll(lambda: name in server.agents(), f"the sentinel {name!r} was asked")


def control_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _control.THREAD_NAME]


# --- off by default -------------------------------------------------------------------


def test_without_a_control_url_heartbeat_never_raises_and_asks_nothing(
    server: ControlServer, pipeline: Pipeline
) -> None:
    server.paused[AGENT] = "would stop it"
    configure(tracer_provider=pipeline.provider, heartbeat_interval_s=0)
    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        assert [heartbeat() for _ in range(50)] == [True] * 50
        check_paused()
        check_paused(AGENT)

    assert _config.current().control is None  # so no poller can ask later either
    assert control_threads() == []
    assert server.paths == []


def test_an_empty_control_url_turns_the_kill_switch_off_despite_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTWATCH_CONTROL_URL", "http://127.0.0.1:8000")
    configure(control_url="")
    assert _config.current().control is None
    configure()
    control = _config.current().control
    assert control is not None
    assert control.url == "http://127.0.0.1:8000"


# --- running, paused, resumed ---------------------------------------------------------


def test_a_running_agent_passes_every_heartbeat(server: ControlServer, pipeline: Pipeline) -> None:
    configure(tracer_provider=pipeline.provider, control_url=server.url, control_interval_s=FAST_S)
    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        beat_until(lambda: server.answered >= 3, "three answers")
    assert set(server.agents()) == {AGENT}
    assert set(server.authorizations) == {None}  # no token configured


def test_a_pause_stops_the_agent_at_its_next_heartbeat_and_a_resume_lets_it_go_on(
    server: ControlServer, pipeline: Pipeline
) -> None:
    configure(tracer_provider=pipeline.provider, control_url=server.url, control_interval_s=FAST_S)
    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        beat_until(lambda: server.answered >= 1, "a running answer")

        server.paused[AGENT] = "refund loop, INC-42"
        stopped = until_paused()

        assert isinstance(stopped, RuntimeError)
        assert stopped.agent == AGENT
        assert stopped.reason == "refund loop, INC-42"
        assert stopped.paused_at == datetime(2026, 11, 24, 15, 4, 5, 123000, tzinfo=UTC)
        assert stopped.paused_by == "acme"
        assert str(stopped) == "agent 'billing-agent' is paused in agentwatch: refund loop, INC-42"
        with pytest.raises(AgentPaused):  # on every call, not once
            heartbeat()
        with pytest.raises(AgentPaused, match="INC-42"):
            check_paused()
        with pytest.raises(AgentPaused, match="INC-42"):
            check_paused(AGENT)

        del server.paused[AGENT]
        beat_until_running()
        heartbeat()
        check_paused()


def test_the_first_check_of_an_agent_passes_and_starts_a_refresh(server: ControlServer) -> None:
    server.paused["night-batch"] = "maintenance"
    configure(control_url=server.url, control_interval_s=FAST_S)

    check_paused("night-batch")  # no answer yet, and it never waits for one

    poll(lambda: server.asked("night-batch") >= 1, "the refresh reached agentwatch")
    assert until_paused(functools.partial(check_paused, "night-batch")).reason == "maintenance"


def test_heartbeat_checks_the_agent_its_marker_names(
    server: ControlServer, pipeline: Pipeline
) -> None:
    server.paused[AGENT] = "stop"
    configure(tracer_provider=pipeline.provider, control_url=server.url, control_interval_s=FAST_S)

    heartbeat()  # outside any span: no agent
    with pipeline.tracer.start_as_current_span("step without an agent name"):
        heartbeat()
    await_sentinel(server, "sentinel")
    assert server.agents() == ["sentinel"]

    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        assert until_paused().agent == AGENT
        with pipeline.tracer.start_as_current_span("invoke_agent other-agent") as other:
            other.set_attribute("gen_ai.agent.name", "other-agent")
            beat_until(lambda: server.asked("other-agent") >= 2, "other-agent answered")
            named = until_paused(functools.partial(heartbeat, **{"gen_ai.agent.name": AGENT}))
            assert named.agent == AGENT


# --- what is sent ---------------------------------------------------------------------


def test_the_token_is_sent_as_a_bearer_header_and_a_401_never_pauses(
    pipeline: Pipeline,
) -> None:
    server = ControlServer(token="s3cret")
    try:
        server.paused[AGENT] = "stop"
        configure(
            tracer_provider=pipeline.provider, control_url=server.url, control_interval_s=FAST_S
        )
        with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
            beat_until(lambda: len(server.paths) >= 3, "two 401s handled, a third asked")

            configure(
                tracer_provider=pipeline.provider,
                control_url=server.url,
                control_token="s3cret",
                control_interval_s=FAST_S,
            )
            server.authorizations.clear()
            assert until_paused().agent == AGENT
        assert set(server.authorizations) == {"Bearer s3cret"}
    finally:
        server.close()


def test_the_url_and_token_come_from_the_environment_even_without_configure(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = ControlServer(token="from-env")
    monkeypatch.setenv("AGENTWATCH_CONTROL_URL", server.url + "/")
    monkeypatch.setenv("AGENTWATCH_CONTROL_TOKEN", "from-env")
    monkeypatch.setattr(_config, "_current", None)  # as in a process that never configured
    try:
        server.paused[AGENT] = "stop"
        with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
            assert until_paused().agent == AGENT
        assert set(server.authorizations) == {"Bearer from-env"}
        assert set(server.agents()) == {AGENT}  # the trailing slash did not double
    finally:
        control = _config.current().control
        assert control is not None
        control.close()
        server.close()


def test_redirects_are_not_followed(pipeline: Pipeline) -> None:
    server = ControlServer(token="s3cret")
    try:
        server.mode = "redirect"
        server.paused["elsewhere"] = "a paused agent somewhere else"
        configure(
            tracer_provider=pipeline.provider,
            control_url=server.url,
            control_token="s3cret",
            control_interval_s=FAST_S,
        )
        with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
            beat_until(lambda: server.asked(AGENT) >= 2, "two redirects handled")
        await_sentinel(server, "sentinel")
        assert "elsewhere" not in server.agents()
    finally:
        server.close()


def test_the_agent_name_is_one_url_encoded_path_segment(server: ControlServer) -> None:
    name = "ops/billing agent"
    server.paused[name] = "stop"
    configure(control_url=server.url, control_interval_s=FAST_S)

    assert until_paused(functools.partial(check_paused, name)).agent == name
    assert server.paths[0] == "/api/v1/agents/ops%2Fbilling%20agent/control"


# --- agentwatch slow, down or wrong ---------------------------------------------------


def test_heartbeat_never_waits_for_a_slow_agentwatch(
    server: ControlServer, pipeline: Pipeline
) -> None:
    """Requests are held until the end, and the client would wait 600 s for each.

    A watchdog releases them after the deadline, so a heartbeat that waited fails the
    test (answers arrive) instead of hanging it.
    """
    server.hold = threading.Event()
    watchdog = threading.Timer(DEADLINE_S, server.hold.set)
    watchdog.start()
    try:
        configure(
            tracer_provider=pipeline.provider,
            control_url=server.url,
            control_timeout_s=600,
            control_interval_s=FAST_S,
        )
        with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
            beat_until(lambda: len(server.paths) >= 1, "a held request")
            for step in range(200):
                heartbeat(step=step)
                check_paused(f"agent-{step % 7}")
        assert server.answered == 0
        assert not server.hold.is_set()
    finally:
        watchdog.cancel()
        server.hold.set()


def test_requests_that_time_out_are_retried_and_never_pause(
    server: ControlServer, pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentwatch_sdk")
    server.paused[AGENT] = "would stop it"
    server.hold = threading.Event()  # released only at the end: every request times out
    configure(
        tracer_provider=pipeline.provider,
        control_url=server.url,
        control_timeout_s=0.05,
        control_interval_s=FAST_S,
    )
    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        beat_until(lambda: server.asked(AGENT) >= 3, "three attempts")
    assert any("timed out" in record.getMessage() for record in caplog.records)


def test_an_unreachable_agentwatch_never_pauses_and_is_retried(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    caplog.set_level(logging.DEBUG, logger="agentwatch_sdk")
    configure(
        tracer_provider=pipeline.provider,
        control_url=f"http://127.0.0.1:{closed_port}",
        control_interval_s=FAST_S,
    )

    def failures() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "no answer for 'billing-agent'" in r.getMessage()]

    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        beat_until(lambda: len(failures()) >= 3, "three failed attempts")
    assert {record.levelno for record in failures()} == {logging.DEBUG}


@pytest.mark.parametrize("failure", ["error", "garbage", "unauthorized"])
def test_a_paused_agent_stays_paused_while_agentwatch_fails(
    server: ControlServer, pipeline: Pipeline, failure: str
) -> None:
    server.paused[AGENT] = "stop"
    configure(tracer_provider=pipeline.provider, control_url=server.url, control_interval_s=FAST_S)
    with pipeline.tracer.start_as_current_span("invoke_agent", attributes=GENAI_AGENT):
        until_paused()

        server.mode = failure
        del server.paused[AGENT]  # not what the failing server says
        seen = len(server.paths)

        def step() -> bool:
            with pytest.raises(AgentPaused):
                heartbeat()
            return len(server.paths) >= seen + 2

        poll(step, "two failures")  # the poller is serial: the first one has been handled
        with pytest.raises(AgentPaused):
            heartbeat()

        server.mode = "ok"
        beat_until_running()


def test_the_cached_answer_is_reused_until_the_interval_passes(
    server: ControlServer, clock: FakeClock
) -> None:
    configure(control_url=server.url, control_interval_s=2.0, clock=clock)
    check_paused("a")
    await_sentinel(server, "sentinel-1")  # and so "a" has its answer: running
    server.paused["a"] = "stop"

    for _ in range(100):
        check_paused("a")  # the clock stands still: the cached answer is fresh
    await_sentinel(server, "sentinel-2")
    assert server.asked("a") == 1

    clock.now += 2.0
    server.hold = threading.Event()  # the refresh stays in flight during the next calls
    for _ in range(100):
        check_paused("a")
    server.hold.set()
    until_paused(functools.partial(check_paused, "a"))
    await_sentinel(server, "sentinel-3")
    assert server.asked("a") == 2  # one refresh, however many calls while it was in flight


# --- resources ------------------------------------------------------------------------


def test_one_poller_thread_serves_every_agent_and_configure_stops_it(
    server: ControlServer,
) -> None:
    configure(control_url=server.url, control_interval_s=FAST_S)
    names = [f"agent-{n}" for n in range(5)]

    def step() -> bool:
        for name in names:
            check_paused(name)
        return set(names) <= set(server.agents())

    poll(step, "every agent asked")
    threads = control_threads()
    assert len(threads) == 1

    configure()
    threads[0].join(DEADLINE_S)
    assert not threads[0].is_alive()


def test_the_agents_remembered_are_bounded(server: ControlServer) -> None:
    server.hold = threading.Event()  # the poller stays on the first request
    configure(control_url=server.url, control_timeout_s=600)
    for n in range(3 * _control.MAX_AGENTS):
        check_paused(f"agent-{n}")
    control = _config.current().control
    assert control is not None
    assert len(control._entries) == _control.MAX_AGENTS
    assert len(control._queue) == _control.MAX_AGENTS


# --- set-up and the exception ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"control_url": "ftp://agentwatch:21"}, "base URL"),
        ({"control_url": "agentwatch:8000"}, "base URL"),
        ({"control_url": "http://agentwatch:8000/?tenant=a"}, "base URL"),
        ({"control_interval_s": 0}, "control_interval_s must be > 0"),
        ({"control_interval_s": float("nan")}, "control_interval_s must be > 0"),
        ({"control_timeout_s": -1}, "control_timeout_s must be > 0"),
        ({"control_timeout_s": float("inf")}, "control_timeout_s must be > 0"),
        ({"control_token": "two words"}, "printable ASCII"),
        ({"control_token": "tok\r\nx-admin: 1"}, "printable ASCII"),
    ],
)
def test_configure_rejects_bad_control_values_at_set_up(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        configure(**{"control_url": "http://127.0.0.1:8000", **kwargs})


def test_a_bad_url_in_the_environment_is_rejected_by_configure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTWATCH_CONTROL_URL", "agentwatch:8000")
    with pytest.raises(ValueError, match="AGENTWATCH_CONTROL_URL"):
        configure()
    monkeypatch.delenv("AGENTWATCH_CONTROL_URL")  # so the fixtures can configure()


def test_agent_paused_survives_pickling_with_its_details() -> None:
    paused_at = datetime(2026, 11, 24, 15, 4, 5, tzinfo=UTC)
    original = AgentPaused("billing-agent", "refund loop", paused_at, "acme")
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.agent, copy.reason, copy.paused_at, copy.paused_by) == (
        "billing-agent",
        "refund loop",
        paused_at,
        "acme",
    )
    assert str(copy) == str(original)
    assert str(AgentPaused("x")) == "agent 'x' is paused in agentwatch"

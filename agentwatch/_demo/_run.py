"""`agentwatch demo`, start to finish: agentwatch, the fleet, the timeline, the verdict."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.logging import RichHandler

from agentwatch._demo import _config
from agentwatch._demo._agents import BILLING, FLEET
from agentwatch._demo._alerts import Alert, ConsoleReceiver
from agentwatch._demo._fleet import Fleet
from agentwatch._demo._server import EmbeddedAgentwatch, Finding, FindingsPoller, wait_until_ready
from agentwatch._demo._summary import cli_commands, outcome, print_next_steps, print_summary
from agentwatch._demo._timeline import Timeline
from agentwatch._demo._view import Board, PlainView, RichView, View
from agentwatch.settings import ConfigError, Settings

MIN_DURATION_S = 30.0
GRACE_S = 20.0  # after the timeline: how long to wait for incidents not yet detected


def main(args: argparse.Namespace) -> int:
    if args.duration < MIN_DURATION_S:
        return _refuse(f"--duration must be at least {MIN_DURATION_S:.0f} s")
    if args.otlp and not args.target:
        return _refuse("--otlp goes with --target (the demo's own agentwatch picks its ports)")
    if args.target and not args.target.startswith(("http://", "https://")):
        return _refuse(f"--target must be the API's http(s) URL, got {args.target!r}")
    # SIGTERM ends the demo like Ctrl-C: agents flushed, agentwatch drained, temp dir gone.
    signal.signal(signal.SIGTERM, _interrupt)
    ui = not args.no_ui and sys.stdout.isatty()
    console = Console() if ui else None
    _set_up_logging(console)
    try:
        with contextlib.ExitStack() as stack:
            return _Session(args, console, stack).run()
    except ConfigError as exc:
        return _refuse(str(exc))
    except KeyboardInterrupt:  # while agentwatch was starting
        return 130


class _Session:
    """One demo: where it sends and reads, the fleet, the timeline and the view."""

    def __init__(
        self, args: argparse.Namespace, console: Console | None, stack: contextlib.ExitStack
    ) -> None:
        self.args = args
        self.console = console
        self.own = not args.target
        # A target may want a token (docker compose: dev-api-token); our own has none.
        self.token = (os.environ.get("AGENTWATCH_API_TOKEN") or None) if args.target else None
        self.view: View | None = None
        self.alerts_delivered = 0
        if self.own:
            self.api, self.otlp = self._start_own(stack)
        else:
            self.api, self.otlp = self._use_target()
        self.fleet = Fleet(FLEET, self.otlp, args.seed)
        self.timeline = Timeline(self.fleet, args.duration)
        self.poller = FindingsPoller(self.api, self.token, time.time(), self._on_finding)
        where = "alerts: console" if self.own else "target agentwatch"
        self.board = Board(
            f"agentwatch demo · API {self.api} · OTLP/gRPC {self.otlp} · {where}",
            args.duration,
            self.fleet,
            self.timeline,
            lambda: list(self.poller.findings.values()),
            alerts=lambda: self.alerts_delivered,
        )

    # -- where the telemetry goes ---------------------------------------------------------

    def _start_own(self, stack: contextlib.ExitStack) -> tuple[str, str]:
        receiver = stack.enter_context(ConsoleReceiver(_config.SECRET, self._on_alert))
        data_dir = self.args.data_dir
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="agentwatch-demo-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        elif (data_dir / "detectors" / "state.json").exists():
            print(
                f"note: {data_dir} holds an earlier run's detector state: the detectors "
                "remember its agents (a fresh dir gives a clean run)"
            )
        config, agents = _config.write_config(data_dir, receiver.url)
        settings = Settings(
            data_dir=data_dir,
            otlp_grpc="127.0.0.1:0",
            otlp_http="127.0.0.1:0",
            api="127.0.0.1:0",
            config=config,
            agents=agents,
            flush_interval_s=0.5,  # fresh enough; each insert costs chDB ~0.1 s of CPU
            ingest_tokens={},
            api_tokens={},
            clickhouse_url=None,
            clickhouse_query_url=None,
        )
        print(f"agentwatch demo: starting agentwatch (embedded chDB in {data_dir}) ...", flush=True)
        server = stack.enter_context(EmbeddedAgentwatch(settings))
        api, otlp = server.endpoints.api, server.endpoints.otlp_grpc
        print(f"agentwatch: API {api}  OTLP/gRPC {otlp}  OTLP/HTTP {server.endpoints.otlp_http}")
        print(f"demo thresholds ({config}), changed so every detector fires within a minute:")
        for line in _config.changed_thresholds():
            print(f"  {line}")
        allowed = ", ".join(BILLING.allowed_tools)
        print(f"job descriptions: {agents} ({BILLING.name} may call {allowed})")
        print(f"alerts: console (every finding, as a signed webhook to {receiver.url})", flush=True)
        return api, otlp

    def _use_target(self) -> tuple[str, str]:
        api = self.args.target.rstrip("/")
        otlp = self.args.otlp or f"{urlsplit(api).hostname}:4317"
        problem = wait_until_ready(api, self.token, 10.0)
        if problem:
            raise ConfigError(f"--target: {problem}")
        directory = self.args.data_dir or Path(tempfile.mkdtemp(prefix="agentwatch-demo-"))
        config, agents = _config.write_config(directory, None)
        print(f"agentwatch demo against {api} (OTLP/gRPC {otlp})")
        print(
            "note: a running agentwatch keeps its own thresholds: detection takes the "
            "server's configured times\n"
            "  (by default a zombie after 2 min idle, tool failures over 5 min-1 h windows, "
            "quality drift after 50 scores),\n"
            "  and a scope violation needs job descriptions. Some incidents may go "
            "undetected within the demo.\n"
            f"  A server with the demo's thresholds: agentwatch serve --config {config} "
            f"--agents {agents}",
            flush=True,
        )
        return api, otlp

    # -- the run ----------------------------------------------------------------------

    def run(self) -> int:
        from agentwatch_sdk import configure

        configure(
            tracer_provider=self.fleet.router,
            heartbeat_interval_s=1.0,
            control_url=self.api,
            control_token=self.token or "",
        )
        self.view = RichView(self.board, self.console) if self.console else PlainView(self.board)
        interrupted = False
        self.fleet.start()
        self.poller.start()
        try:
            with self.view:
                self._play()
        except KeyboardInterrupt:
            interrupted = True
        keep = self.args.keep and not interrupted
        if not keep:
            self.view = None  # late alerts and resolutions would land inside the summary
            self.fleet.stop()
        self.poller.poll()
        findings = list(self.poller.findings.values())
        result = outcome(self.timeline, findings, self.board.started_wall)
        print()
        print_summary(result, self.console, self.own)
        print_next_steps(self.api, self.own, keep, self.timeline, cli_commands())
        if keep:
            self._serve_until_interrupted()
        self.poller.stop()
        configure()
        if interrupted:
            return 130
        return 0 if result.ok else 1

    def _play(self) -> None:
        assert self.view is not None
        self.view.event(
            f"{len(self.fleet.agents)} agents at work; {len(self.timeline.incidents)} incidents "
            f"over {self.args.duration:.0f} s (seed {self.args.seed})"
        )
        board, timeline = self.board, self.timeline
        while board.elapsed_s < board.duration_s:
            for step in timeline.advance(board.elapsed_s):
                self.view.event(f"inject: {step.label}", "yellow")
            self.view.status()
            board.note = self.poller.error
            time.sleep(0.2)
        deadline = time.monotonic() + GRACE_S
        while not timeline.all_detected and time.monotonic() < deadline:
            board.note = f"waiting up to {deadline - time.monotonic():.0f} s for detection"
            self.view.status()
            time.sleep(0.2)
        board.note = "done"

    def _serve_until_interrupted(self) -> None:
        print(
            "\nagentwatch keeps serving and the fleet keeps working (healthy now); Ctrl-C to stop.",
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(1)
        self.fleet.stop()

    # -- what comes back ----------------------------------------------------------------

    def _on_finding(self, finding: Finding, previous: Finding | None) -> None:
        incident = self.timeline.match(finding, time.time())
        self.board.labels[finding["id"]] = incident.name if incident else "FALSE"
        what = f"{finding['kind']} [{finding['severity']}] {finding['agent_name'] or 'all agents'}"
        if finding["tool_name"]:
            what += f" / {finding['tool_name']}"
        if previous is None:
            text, style = f"finding opened: {what}: {finding['summary']}", "bold"
            if incident is None:
                text, style = f"{text}  (FALSE: no incident explains it)", "bold red"
            elif incident.finding is not None and incident.finding["id"] == finding["id"]:
                text += f"  -> {incident.name} detected after {incident.detected_after_s:.1f} s"
                style = "bold green"
        elif finding["state"] == "resolved" and previous["state"] != "resolved":
            resolution = finding["evidence"].get("resolution", "")
            text, style = (
                f"finding resolved: {what}" + (f" ({resolution})" if resolution else ""),
                "",
            )
        else:
            return
        if self.view is not None:
            self.view.event(text, style)

    def _on_alert(self, alert: Alert) -> None:
        self.alerts_delivered += 1
        if self.view is not None:
            signed = "" if alert.signed else " (SIGNATURE DID NOT VERIFY)"
            self.view.event(alert.line() + signed, "cyan")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _refuse(problem: str) -> int:
    print(f"agentwatch demo: {problem}", file=sys.stderr)
    return 2


def _set_up_logging(console: Console | None) -> None:
    """Warnings only; on the dashboard through its console, so they do not tear it."""
    handler: logging.Handler
    if console is not None:
        handler = RichHandler(console=console, show_path=False)
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)

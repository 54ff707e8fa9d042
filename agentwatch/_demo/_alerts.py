"""The demo's "console" alert receiver: a signed-webhook endpoint on 127.0.0.1.

agentwatch has no console receiver; the demo routes every finding to a webhook
receiver pointing here, checks the Standard Webhooks signature, and hands each alert
to a callback that prints it — so the alerts seen are the ones agentwatch delivered.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api.alerts._formats import verify_webhook


@dataclass(frozen=True)
class Alert:
    received_at: float
    event: str  # finding.opened, finding.resolved, finding.repeated, finding.test
    finding: dict[str, Any]
    signed: bool

    def line(self) -> str:
        f = self.finding
        what = f.get("agent_name") or "all agents"
        if f.get("tool_name"):
            what += f" / {f['tool_name']}"
        word = self.event.removeprefix("finding.")
        return f"alert {word}: {f.get('kind')} [{f.get('severity')}] {what}: {f.get('summary')}"


class ConsoleReceiver:
    """`with ConsoleReceiver(on_alert) as receiver:` — `receiver.url` takes the POSTs."""

    def __init__(self, secret: str, on_alert: Callable[[Alert], None]) -> None:
        self._secret = secret
        self._on_alert = on_alert
        self.alerts: list[Alert] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-alerts", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def __enter__(self) -> ConsoleReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, headers: dict[str, str], body: bytes) -> None:
        signed = verify_webhook(self._secret, headers, body, int(time.time()))
        message = json.loads(body)
        alert = Alert(time.time(), str(message.get("type")), dict(message.get("data", {})), signed)
        with self._lock:
            self.alerts.append(alert)
        self._on_alert(alert)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                try:
                    receiver._receive(dict(self.headers.items()), body)
                except ValueError:
                    self.send_response(400)
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the demo prints the alerts themselves."""

        return Handler

"""Real HTTP servers on loopback that answer like Slack, PagerDuty and a webhook.

Each `Receiver` records every request (path, headers, body, arrival time) and answers
from a script: a queue of (status, headers, body) answers used first, then its usual
answer — Slack's `200 ok`, PagerDuty's `202 {"status": "success", "dedup_key": …}`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """One server; `url(path)` for the config. Thread-safe."""

    usual: str = "slack"  # slack / pagerduty / webhook
    requests: list[Request] = field(default_factory=list)
    script: deque[Answer] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                status, headers, answer = receiver._answer(
                    Request(
                        self.path,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                        time.monotonic(),
                    )
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def url(self, path: str = "/hook") -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def answer_next(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)

    def received(self) -> list[Request]:
        with self._lock:
            return list(self.requests)

    def _answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            if self.script:
                return self.script.popleft()
        if self.usual == "pagerduty":
            dedup_key = json.loads(request.body).get("dedup_key", "")
            body = json.dumps(
                {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
            )
            return 202, {"content-type": "application/json"}, body.encode()
        return 200, {"content-type": "text/plain"}, b"ok"

"""The SSRF guard: address classes, config-time URL checks, and the guarded client
against real HTTP(S) servers on loopback. DNS is simulated only where DNS itself is the
subject (rebinding, names that must not exist); this machine has no internet."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.alerts import _ssrf
from api.alerts._ssrf import UnsafeTargetError, check_url, guarded_async_client, is_public_address
from tests.alerts.receivers import Receiver

NOT_PUBLIC = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "192.0.2.1",  # documentation
    "198.18.0.1",  # benchmarking
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12::1",
    "fec0::1",  # site-local: is_global on Python 3.11
    "ff02::1",
    "2001:db8::1",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",  # IPv4-mapped is refused outright
    "::7f00:1",  # IPv4-compatible
    "64:ff9b::7f00:1",  # NAT64 of loopback: is_global on Python 3.11
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "64:ff9b:1::808:808",  # local-use NAT64
    "2002:7f00:1::1",  # 6to4 of loopback
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    ("url", "allow_private", "reason"),
    [
        ("https://127.0.0.1/x", False, "127.0.0.1 (loopback)"),
        ("https://localhost:9/x", False, "127.0.0.1 (loopback)"),
        ("https://2130706433/x", False, "127.0.0.1 (loopback)"),  # one number, for 127.0.0.1
        ("https://169.254.169.254/latest/meta-data", False, "link-local, incl. cloud metadata"),
        ("https://100.64.0.1/", False, "CGNAT"),
        ("https://[::1]/", False, "::1 (loopback)"),
        ("https://[fd12::1]/", False, "unique-local"),
        ("https://[::ffff:10.0.0.1]/", False, "IPv4-mapped"),
        ("https://[::ffff:8.8.8.8]/", False, "IPv4-mapped"),
        ("http://127.0.0.1/x", False, "http is refused without allow_private_targets"),
        ("http://8.8.8.8/x", False, "http is refused without allow_private_targets"),
        ("ftp://example.com", False, "ftp is refused"),
        ("ftp://example.com", True, "ftp is refused"),
        ("https://user:s3cret@8.8.8.8/x", False, "credentials in the URL"),
        ("http://user:s3cret@127.0.0.1/x", True, "credentials in the URL"),
        ("https:///x", False, "no host"),
        ("https://[::1/", False, "invalid URL"),
        ("https://hook.invalid/x", False, "host 'hook.invalid' does not resolve"),
        ("http://hook.invalid/x", True, "host 'hook.invalid' does not resolve"),
    ],
)
def test_check_url_refuses(url: str, allow_private: bool, reason: str) -> None:
    with pytest.raises(UnsafeTargetError) as refused:
        check_url(url, allow_private)
    message = str(refused.value)
    assert reason in message
    assert "\n" not in message
    assert "meta-data" not in message  # the path (a hook's secret) is never shown
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "allow_private"),
    [
        ("https://8.8.8.8/x", False),
        ("https://[2606:4700:4700::1111]:8443/x", False),
        ("https://[64:ff9b::808:808]/x", False),
        ("http://127.0.0.1:9/x", True),
        ("https://localhost/x", True),
        ("http://[::1]/", True),
        ("http://10.0.0.1/", True),
    ],
)
def test_check_url_accepts(url: str, allow_private: bool) -> None:
    check_url(url, allow_private)  # no connection is made


def test_unsafe_target_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="loopback"):
        check_url("https://127.0.0.1/", allow_private=False)


class FakeDNS:
    """Answers for names, in turn (the last answer repeats); records every question."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, **answers: list[list[str]]) -> None:
        self.answers = {name.replace("_", "."): queue for name, queue in answers.items()}
        self.asked: list[str] = []
        monkeypatch.setattr(_ssrf, "_resolve", self.resolve)

    def resolve(self, host: str, port: int) -> list[_ssrf.IPAddress]:
        self.asked.append(host)
        queue = self.answers[host]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ipaddress.ip_address(a) for a in answer]


def test_check_url_refuses_a_name_with_one_internal_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    FakeDNS(monkeypatch, mixed_test=[["8.8.8.8", "10.0.0.1"]])
    with pytest.raises(UnsafeTargetError, match=r"10\.0\.0\.1 \(private\)"):
        check_url("https://mixed.test/hook", allow_private=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver("webhook").start()
    yield running
    running.stop()


@pytest.fixture
def other() -> Iterator[Receiver]:
    running = Receiver("webhook").start()
    yield running
    running.stop()


def port_of(receiver: Receiver) -> int:
    return httpx.URL(receiver.url()).port or 0


def post(url: str, allow_private: bool, ssl_context: ssl.SSLContext | None = None) -> Any:
    """POST through a fresh guarded client; the response (or the exception raised)."""

    async def main() -> httpx.Response:
        async with guarded_async_client(allow_private, 5.0, ssl_context=ssl_context) as client:
            return await client.post(url, content=b"{}")

    return asyncio.run(main())


def test_loopback_receiver_is_refused_at_connect_time(receiver: Receiver) -> None:
    with pytest.raises(UnsafeTargetError, match=r"127\.0\.0\.1 \(loopback\)"):
        post(f"https://127.0.0.1:{port_of(receiver)}/hook", allow_private=False)
    assert receiver.received() == []


def test_loopback_receiver_is_reached_when_private_targets_allowed(receiver: Receiver) -> None:
    response = post(receiver.url("/hook"), allow_private=True)
    assert response.status_code == 200
    assert [r.path for r in receiver.received()] == ["/hook"]


def test_name_resolving_to_loopback_is_refused_at_connect_time(receiver: Receiver) -> None:
    # never checked by check_url: the connection itself is refused
    with pytest.raises(UnsafeTargetError, match=r"'localhost'.*127\.0\.0\.1 \(loopback\)"):
        post(f"https://localhost:{port_of(receiver)}/hook", allow_private=False)
    assert receiver.received() == []


def test_http_is_refused_at_send_time_without_allow_private(receiver: Receiver) -> None:
    with pytest.raises(UnsafeTargetError, match="http is refused"):
        post(receiver.url("/hook"), allow_private=False)
    assert receiver.received() == []


def test_dns_rebinding_after_the_config_check_is_refused(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    dns = FakeDNS(monkeypatch, rebind_test=[["8.8.8.8"], ["127.0.0.1"]])
    url = f"https://rebind.test:{port_of(receiver)}/hook"
    check_url(url, allow_private=False)  # public at config load
    with pytest.raises(UnsafeTargetError, match=r"127\.0\.0\.1 \(loopback\)"):
        post(url, allow_private=False)
    assert dns.asked == ["rebind.test", "rebind.test"]
    assert receiver.received() == []


def test_connect_time_refuses_when_any_answer_is_internal(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    FakeDNS(monkeypatch, mixed_test=[["8.8.8.8", "127.0.0.1"]])
    with pytest.raises(UnsafeTargetError, match=r"127\.0\.0\.1 \(loopback\)"):
        post(f"https://mixed.test:{port_of(receiver)}/hook", allow_private=False)
    assert receiver.received() == []


def test_connection_goes_to_the_address_the_guard_resolved(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    # hook.test exists in no real DNS: only the guard's answer can have reached the server
    dns = FakeDNS(monkeypatch, hook_test=[["127.0.0.1"]])
    response = post(f"http://hook.test:{port_of(receiver)}/hook", allow_private=True)
    assert response.status_code == 200
    assert dns.asked == ["hook.test"]
    [request] = receiver.received()
    assert request.headers["host"] == f"hook.test:{port_of(receiver)}"


def test_next_address_is_tried_when_one_refuses_the_connection(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    FakeDNS(monkeypatch, two_test=[["127.0.0.2", "127.0.0.1"]])  # nothing on 127.0.0.2
    response = post(f"http://two.test:{port_of(receiver)}/hook", allow_private=True)
    assert response.status_code == 200
    assert len(receiver.received()) == 1


def test_name_that_does_not_resolve_at_connect_time_is_a_transient_connect_error() -> None:
    with pytest.raises(httpx.ConnectError, match=r"'hook\.invalid' does not resolve") as failed:
        post("https://hook.invalid/hook", allow_private=False)
    assert not isinstance(failed.value, UnsafeTargetError)


def test_redirect_is_returned_not_followed(receiver: Receiver, other: Receiver) -> None:
    receiver.answer_next((302, {"location": other.url("/elsewhere")}, b""))
    response = post(receiver.url("/hook"), allow_private=True)
    assert response.status_code == 302
    assert response.headers["location"] == other.url("/elsewhere")
    assert len(receiver.received()) == 1
    assert other.received() == []


def test_proxy_settings_in_the_environment_are_ignored(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, other: Receiver
) -> None:
    # `other` stands for a proxy: a request through it would be an unchecked hop
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, other.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    FakeDNS(monkeypatch, hook_test=[["127.0.0.1"]])
    response = post(f"http://hook.test:{port_of(receiver)}/hook", allow_private=True)
    assert response.status_code == 200
    assert len(receiver.received()) == 1
    assert other.received() == []


class TLSServer:
    """HTTPS on 127.0.0.1 with a certificate for `hook.test` only; counts requests."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    server.requests += 1
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.socket = context.wrap_socket(self.http.socket, server_side=True)
        self.port = self.http.server_address[1]
        self.cert = cert
        threading.Thread(target=self.http.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[TLSServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    command += " -days 1 -subj /CN=hook.test -addext subjectAltName=DNS:hook.test"
    subprocess.run(
        [*command.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    server = TLSServer(cert, key)
    yield server
    server.stop()


def test_tls_is_verified_against_the_host_name_not_the_address(
    monkeypatch: pytest.MonkeyPatch, tls_server: TLSServer
) -> None:
    FakeDNS(monkeypatch, hook_test=[["127.0.0.1"]], other_test=[["127.0.0.1"]])
    context = ssl.create_default_context(cafile=str(tls_server.cert))
    response = post(f"https://hook.test:{tls_server.port}/hook", True, context)
    assert response.status_code == 200  # the certificate names hook.test, not 127.0.0.1
    assert tls_server.requests == 1
    with pytest.raises(httpx.ConnectError, match="Hostname mismatch"):
        post(f"https://other.test:{tls_server.port}/hook", True, context)
    assert tls_server.requests == 1

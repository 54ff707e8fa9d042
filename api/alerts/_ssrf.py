"""SSRF guard for alert delivery: webhook targets must be public addresses.

A receiver URL is checked twice:

* at config load, `check_url`: https only (http too when private targets are allowed),
  a host, no `user:pass@`; the host must resolve, and every address it resolves to must
  be public (`is_public_address`);
* at connect time, by `guarded_async_client`: its transport resolves the host itself,
  checks every address again and connects to one of those checked addresses, so a DNS
  answer that changes between the two checks (DNS rebinding) cannot reach an internal
  address. TLS is still verified against the host name (httpcore sends the URL's host as
  SNI and checks the certificate against it, whatever address the socket went to).

`allow_private` (config `allow_private_targets`, for tests and on-prem receivers) lifts
the address rule and allows http; everything else still applies.

Errors:

    ValueError
     └── UnsafeTargetError    the target is refused: permanent, never retried

At connect time a refused target raises `UnsafeTargetError` itself, through httpx
unchanged (httpx maps only httpcore's exceptions), so it is told apart from
`httpx.HTTPError` (timeouts, refused connections, names that stop resolving: transient).

Messages name the origin (scheme://host:port) but never the path or query, which for
Slack and similar hooks is the secret.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable

import anyio
import anyio.to_thread
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeTargetError(ValueError):
    """A webhook target that must not be contacted; the message says which and why."""


# Refused networks, each with the reason shown in errors. `ipaddress`'s own is_global is
# checked after these; the list makes the rule independent of the Python version (3.11's
# is_global calls multicast, fec0::/10 and 64:ff9b::/96 global).
_V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), why)
    for net, why in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "CGNAT shared address space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local, incl. cloud metadata"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), why)
    for net, why in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "SRv6 segment identifiers"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def is_public_address(ip: IPAddress) -> bool:
    """True when `ip` is a public unicast address a webhook may be sent to.

    False for loopback, private, link-local, CGNAT, unspecified, multicast, broadcast,
    reserved, documentation, unique-local and site-local addresses; IPv4-mapped
    (::ffff:0:0/96) and Teredo addresses are refused outright; NAT64 (64:ff9b::/96) and
    6to4 (2002::/16) addresses are judged by the IPv4 address they embed.
    """
    return _why_not_public(ip) is None


def _why_not_public(ip: IPAddress) -> str | None:
    """None for a public address, else the reason it is refused."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "IPv4-mapped"
        embedded, kind = _embedded_ipv4(ip)
        if embedded is not None:
            why = _why_not_public(embedded)
            return None if why is None else f"{kind} of {embedded}, {why}"
        refused: Iterable[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]
        refused = _V6_REFUSED
    else:
        refused = _V4_REFUSED
    for network, why in refused:
        if ip in network:
            return why
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    return None, ""


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a receiver URL at config load (raises `UnsafeTargetError`).

    https only, or http as well when `allow_private`; a host; no credentials in the URL.
    The host must resolve (an IP literal is taken as is), and unless `allow_private`
    every address it resolves to must be public — one internal answer is enough to refuse.
    A host that does not resolve is refused in both modes: a typo should fail at start-up,
    not at the first alert.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeTargetError(f"invalid URL: {exc}") from None
    _check_shape(parsed, allow_private)
    host = parsed.raw_host.decode("ascii")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = _addresses(host, port)
    except OSError as exc:
        raise UnsafeTargetError(
            f"{_origin(parsed)}: host {host!r} does not resolve ({exc})"
        ) from None
    internal = None if allow_private else _first_internal(addresses)
    if internal is not None:
        raise UnsafeTargetError(
            f"{_origin(parsed)}: host {host!r} resolves to {internal}, not a public address"
        )


def _check_shape(url: httpx.URL, allow_private: bool) -> None:
    """The checks that need no DNS: scheme, host, no credentials."""
    allowed = ("http", "https") if allow_private else ("https",)
    if url.scheme not in allowed:
        shown = url.scheme or "no scheme"
        hint = "" if url.scheme not in ("http", "https") else " without allow_private_targets"
        raise UnsafeTargetError(f"{_origin(url)}: {shown} is refused{hint}; use https")
    if not url.raw_host:
        raise UnsafeTargetError(f"{_origin(url)}: the URL has no host")
    if url.userinfo:
        raise UnsafeTargetError(
            f"{_origin(url)}: credentials in the URL (user:password@) are refused"
        )


def _first_internal(addresses: list[IPAddress]) -> str | None:
    """'<address> (<why>)' for the first address that is not public, else None."""
    for ip in addresses:
        why = _why_not_public(ip)
        if why is not None:
            return f"{ip} ({why})"
    return None


def _origin(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{host}{port}"


def _addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses to check and connect to: an IP literal itself, else DNS's answer."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return _resolve(host, port)


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order (the seam tests replace
    to simulate DNS); raises OSError (socket.gaierror) when it does not resolve."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in answers:
        if family in (socket.AF_INET, socket.AF_INET6):
            ip = ipaddress.ip_address(sockaddr[0])
            if ip not in addresses:
                addresses.append(ip)
    if not addresses:
        raise socket.gaierror(f"no IPv4 or IPv6 address for {host!r}")
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but a TCP connection goes only to an address this
    backend resolved and checked itself."""

    def __init__(self, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else anyio.current_time() + timeout
        addresses = await self._resolve(host, port, timeout)
        internal = None if self._allow_private else _first_internal(addresses)
        if internal is not None:
            raise UnsafeTargetError(
                f"connection to {host!r} port {port} refused: {host!r} resolves to {internal},"
                " not a public address"
            )
        error: Exception | None = None
        for ip in addresses:  # each in turn, within the one connect timeout
            left = None if deadline is None else deadline - anyio.current_time()
            if left is not None and left <= 0:
                raise httpcore.ConnectTimeout(f"connecting to {host!r} port {port} timed out")
            try:
                return await self._backend.connect_tcp(
                    str(ip), port, left, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # _resolve returns at least one address
        raise error

    async def _resolve(self, host: str, port: int, timeout: float | None) -> list[IPAddress]:
        try:
            with anyio.fail_after(timeout):
                return await anyio.to_thread.run_sync(
                    _addresses, host, port, abandon_on_cancel=True
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from None
        except OSError as exc:  # a name that stops resolving may come back: transient
            raise httpcore.ConnectError(f"host {host!r} does not resolve ({exc})") from exc

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeTargetError(f"connection to unix socket {path!r} refused")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the guarded backend; no proxy, no unix socket."""

    def __init__(self, allow_private: bool, ssl_context: ssl.SSLContext) -> None:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx offers no way to hand httpcore a network backend, so the pool it built is
        # replaced by the same pool (same SSL context and limits) on the guarded backend.
        # `_pool` is httpx's private attribute: fail closed if it ever goes away (else the
        # assignment below would leave httpx's unguarded pool in use); the connect-time
        # tests in tests/alerts/test_ssrf.py would fail too.
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport has no _pool: cannot guard it")
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow_private),
        )
        self._allow_private = allow_private

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _check_shape(request.url, self._allow_private)
        return await super().handle_async_request(request)


def guarded_async_client(
    allow_private: bool, timeout_s: float = 10.0, *, ssl_context: ssl.SSLContext | None = None
) -> httpx.AsyncClient:
    """An httpx.AsyncClient for webhook delivery that checks every request and connection.

    Per request: the URL's shape as in `check_url` (no DNS). Per new connection: the host
    is resolved by the guard, every address checked (unless `allow_private`), and the
    socket connected to a checked address; TLS verified against the host name.
    A refused target raises `UnsafeTargetError` (permanent); DNS failures and
    unreachable addresses raise `httpx.ConnectError`/`httpx.ConnectTimeout` (transient).

    Redirects are not followed: a 3xx comes back as the response. (A caller passing
    `follow_redirects=True` to `send` would still have every hop checked.) Proxy and
    certificate settings from the environment are ignored; `ssl_context` (default:
    httpx's, with certifi's CAs) is for a private CA.
    """
    context = ssl_context if ssl_context is not None else httpx.create_ssl_context(trust_env=False)
    return httpx.AsyncClient(
        transport=_GuardedTransport(allow_private, context),
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
    )

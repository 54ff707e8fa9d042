"""A small client of the query API, for the commands that read it over HTTP (so they
work while `serve` holds the data dir): `export-evalset`, `agents`, `findings`, `trace`.

Where the API is: `--api`, else the address `serve` wrote to `<data-dir>/endpoints.json`
(`--data-dir`, else `AGENTWATCH_DATA_DIR`, else `./.agentwatch`), else
`http://127.0.0.1:8000`. Its token: `--token`, else `AGENTWATCH_API_TOKEN`. Every
failure — a bad address, an unreachable API, a refused token, an answer that is not
JSON — is an `ApiError` whose message is one line; the commands exit with status 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_API = "http://127.0.0.1:8000"

Params = Mapping[str, str | Sequence[str]]


class ApiError(Exception):
    """Bad arguments, or no usable API: exit status 2; the message is one line."""


@dataclass(frozen=True)
class ApiTarget:
    url: str  # without a trailing slash
    source: str  # where the address came from, for the error message
    token: str | None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--api`, `--data-dir` and `--token`."""
    parser.add_argument(
        "--api",
        metavar="URL",
        help=f"query API (default: <data-dir>/endpoints.json, else {DEFAULT_API})",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="serve's data dir, for its endpoints.json (default ./.agentwatch)",
    )
    parser.add_argument("--token", help="API bearer token (default AGENTWATCH_API_TOKEN)")


def target_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> ApiTarget:
    """The API address and token from `--api`, `--data-dir`, `--token` and the environment."""
    api, source = args.api, "--api"
    if not api:
        data_dir = args.data_dir or Path(environ.get("AGENTWATCH_DATA_DIR") or ".agentwatch")
        api, source = default_api(data_dir)
    if not api.startswith(("http://", "https://")):
        raise ApiError(f"{source}: {api!r} is not an http:// or https:// URL")
    token = args.token or environ.get("AGENTWATCH_API_TOKEN") or None
    return ApiTarget(api.rstrip("/"), source, token)


def default_api(data_dir: Path) -> tuple[str, str]:
    """The API address `serve` wrote to `<data-dir>/endpoints.json`, else the default."""
    path = data_dir / "endpoints.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DEFAULT_API, "the default address"
    except OSError as exc:
        raise ApiError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        api = json.loads(text)["api"]
    except (ValueError, KeyError, TypeError):
        raise ApiError(f"{path}: no API address in it") from None
    if not isinstance(api, str):
        raise ApiError(f"{path}: no API address in it")
    return api, str(path)


class ApiClient:
    """GET requests to the query API; every failure is an ApiError."""

    def __init__(
        self,
        target: ApiTarget,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        import httpx  # ~0.15 s: loaded by the commands that call the API, not by the CLI

        headers = {"authorization": f"Bearer {target.token}"} if target.token else {}
        self.url = target.url
        self._source = target.source
        self._http = httpx.Client(
            base_url=target.url, headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get(self, path: str, params: Params | None = None, *, missing_ok: bool = False) -> Any:
        """The answer's JSON; None for a 404 when `missing_ok`."""
        import httpx

        try:
            response = self._http.get(path, params=params or {})
        except httpx.HTTPError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ApiError(
                f"cannot reach the agentwatch API at {self.url} (from {self._source}): {reason}"
            ) from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code in (401, 403):
            raise ApiError(
                f"the API at {self.url} refused the request (HTTP {response.status_code}): "
                "give its token with --token or AGENTWATCH_API_TOKEN"
            )
        if response.status_code != 200:
            raise ApiError(f"GET {path}: HTTP {response.status_code}: {_detail(response)}")
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"GET {path}: the answer is not JSON; is {self.url} agentwatch?"
            ) from None


def _detail(response: httpx.Response) -> str:
    """The API's `detail` when it gave one, else the start of the body, on one line."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    text = detail if isinstance(detail, str) else response.text
    return " ".join(text.split())[:200]

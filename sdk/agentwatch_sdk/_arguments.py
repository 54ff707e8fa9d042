"""Tool-call arguments as JSON text, and the hash the backend groups repeated calls by."""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

_JSON_OPENERS = frozenset('{["')


def to_json(arguments: object) -> str:
    """`arguments` as compact JSON; a `str` is taken as already-serialized arguments."""
    if isinstance(arguments, str):
        return arguments
    try:
        return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"), default=_plain)
    except (TypeError, ValueError, RecursionError):  # circular, or keys JSON cannot hold
        return repr(arguments)


def _plain(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    model_dump = getattr(value, "model_dump", None)  # pydantic models
    if callable(model_dump):
        return model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def arguments_hash(text: str) -> str:
    """16 hex chars of BLAKE2b over the canonical JSON of `text` ("" for no arguments).

    The same algorithm as the backend's `ToolArgsHash`: JSON (one level of
    JSON-in-a-JSON-string unwrapped) with sorted keys and no whitespace, other text as
    is. Computed over the full arguments, before they are cut for the attribute.
    """
    text = text.strip()
    if not text:
        return ""
    return hashlib.blake2b(_canonical(text), digest_size=8).hexdigest()


def _canonical(text: str) -> bytes:
    if text[:1] in _JSON_OPENERS:
        try:
            value = json.loads(text)
            if isinstance(value, str) and value.lstrip()[:1] in _JSON_OPENERS:
                value = json.loads(value)
            canonical = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            return canonical.encode("utf-8", "surrogatepass")
        except (ValueError, RecursionError):
            pass
    return text.encode("utf-8", "surrogatepass")


def call_arguments(
    signature: inspect.Signature | None,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> dict[str, Any] | None:
    """A decorated function's call as {parameter: value}, defaults applied.

    `self` / `cls` (as the first parameter) are left out, and `**kwargs` are merged in,
    so equal calls give equal JSON. None when the call does not bind (the function's
    own TypeError follows).
    """
    if signature is None:
        return None
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    first = next(iter(signature.parameters), None)
    result: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name == first and name in ("self", "cls"):
            continue
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            result.update(value)
        else:
            result[name] = value
    return result


def signature_of(func: Callable[..., object]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):  # some builtins have none
        return None

"""agentwatch_sdk.tool_call with the real OpenTelemetry SDK."""

from __future__ import annotations

import asyncio
import json

import pytest
from agentwatch_sdk import (
    configure,
    current_tool_call,
    tool_call,
)
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import tests.sdk.support  # noqa: F401  (puts sdk/ on sys.path first)
from ingest._conventions import _args_hash
from tests.sdk.support import (
    BrokenProvider,
    Pipeline,
)
from tests.sdk.support import attrs as _attrs
from tests.sdk.support import ctx as _ctx

# --- tool calls -----------------------------------------------------------------------


def test_tool_call_context_manager_records_the_call_per_genai_conventions() -> None:
    pipeline = Pipeline(pending=True)
    configure(tracer_provider=pipeline.provider)
    with (
        pipeline.tracer.start_as_current_span("run") as run,
        tool_call("crm.lookup", arguments={"customer": "c-1", "n": 2}, call_id="call_9") as call,
    ):
        inner = pipeline.tracer.start_span("http GET")
        inner.end()

    span = pipeline.one("execute_tool crm.lookup")
    assert call.call_id == "call_9"
    assert span.kind is trace.SpanKind.INTERNAL
    assert span.parent is not None
    assert span.parent.span_id == run.get_span_context().span_id
    assert _attrs(span) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "crm.lookup",
        "gen_ai.tool.call.id": "call_9",
        "gen_ai.tool.call.arguments": '{"customer":"c-1","n":2}',
        "agentwatch.tool.call.arguments_hash": _args_hash('{"n": 2, "customer": "c-1"}'),
    }
    assert span.status.status_code is StatusCode.UNSET
    # The tool span is current inside the block, and announced when it starts.
    assert pipeline.one("http GET").parent == span.get_span_context()
    marker = pipeline.one("agentwatch.pending")
    assert _attrs(marker)["agentwatch.pending.span_id"] == format(_ctx(span).span_id, "016x")
    assert _attrs(marker)["gen_ai.tool.name"] == "crm.lookup"


def test_tool_call_generates_a_call_id_and_omits_absent_arguments() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with tool_call("search") as first, tool_call("search") as second:
        pass
    assert first.call_id.startswith("call_")
    assert first.call_id != second.call_id
    for span in pipeline.spans():
        assert "gen_ai.tool.call.arguments" not in _attrs(span)
        assert _attrs(span)["gen_ai.tool.call.id"] in (first.call_id, second.call_id)


class Upstream:
    class Timeout(Exception):
        pass


def test_tool_call_records_an_exception_and_reraises_it() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with pytest.raises(Upstream.Timeout, match="crm took 30s"), tool_call("crm.lookup"):
        raise Upstream.Timeout("crm took 30s")

    span = pipeline.one("execute_tool crm.lookup")
    assert _attrs(span)["error.type"] == "Upstream.Timeout"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "crm took 30s"
    assert [event.name for event in span.events] == ["exception"]
    assert dict(span.events[0].attributes or {})["exception.message"] == "crm took 30s"


def test_tool_call_cancellation_is_not_a_tool_failure() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with pytest.raises(KeyboardInterrupt), tool_call("slow"):
        raise KeyboardInterrupt

    span = pipeline.one("execute_tool slow")
    assert "error.type" not in _attrs(span)
    assert span.status.status_code is StatusCode.UNSET


def test_mark_failed_records_a_failure_reported_inside_a_result() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with tool_call("crm.lookup", arguments={"customer": "c-404"}) as call:
        result = {"ok": False, "error": "no such customer"}
        if not result["ok"]:
            call.mark_failed("NotFound", str(result["error"]))

    span = pipeline.one("execute_tool crm.lookup")
    assert _attrs(span)["error.type"] == "NotFound"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "no such customer"


def test_tool_call_decorator_records_the_bound_arguments_of_each_call() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)

    @tool_call("crm.lookup")
    def lookup(customer: str, limit: int = 10, **filters: str) -> str:
        return f"{customer}:{limit}"

    assert lookup.__name__ == "lookup"
    assert lookup("c-1") == "c-1:10"
    assert lookup(customer="c-2", limit=3, region="eu") == "c-2:3"

    calls = pipeline.spans("execute_tool crm.lookup")
    arguments = [json.loads(_attrs(span)["gen_ai.tool.call.arguments"]) for span in calls]
    assert arguments == [
        {"customer": "c-1", "limit": 10},
        {"customer": "c-2", "limit": 3, "region": "eu"},
    ]
    call_ids = {_attrs(span)["gen_ai.tool.call.id"] for span in calls}
    assert len(call_ids) == 2


def test_tool_call_decorator_leaves_self_out_and_reraises() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)

    class Crm:
        @tool_call("crm.delete")
        def delete(self, customer: str) -> None:
            raise PermissionError(f"may not delete {customer}")

    with pytest.raises(PermissionError):
        Crm().delete("c-1")

    span = pipeline.one("execute_tool crm.delete")
    assert _attrs(span)["gen_ai.tool.call.arguments"] == '{"customer":"c-1"}'
    assert _attrs(span)["error.type"] == "PermissionError"
    assert span.status.status_code is StatusCode.ERROR


def test_tool_call_decorator_on_async_functions_spans_the_awaited_call() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)

    @tool_call("web.fetch")
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        inner = pipeline.tracer.start_span("inside")  # the tool span is current here
        inner.end()
        handle = current_tool_call()
        assert handle is not None
        if url.endswith("/404"):
            handle.mark_failed("HTTPError", "404")
        return url

    async def main() -> list[str]:
        return list(await asyncio.gather(fetch("https://a/"), fetch("https://b/404")))

    assert asyncio.run(main()) == ["https://a/", "https://b/404"]

    calls = {
        json.loads(_attrs(s)["gen_ai.tool.call.arguments"])["url"]: s
        for s in pipeline.spans("execute_tool web.fetch")
    }
    assert set(calls) == {"https://a/", "https://b/404"}
    assert calls["https://a/"].status.status_code is StatusCode.UNSET
    assert _attrs(calls["https://b/404"])["error.type"] == "HTTPError"
    inner_parents = {span.parent.span_id for span in pipeline.spans("inside") if span.parent}
    assert inner_parents == {_ctx(span).span_id for span in calls.values()}
    assert current_tool_call() is None


def test_tool_call_arguments_are_truncated_but_hashed_in_full() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, max_argument_chars=20)
    long_a, long_b = {"text": "x" * 100 + "a"}, {"text": "x" * 100 + "b"}
    for arguments in (long_a, long_b):
        with tool_call("write", arguments=arguments):
            pass

    first, second = (_attrs(span) for span in pipeline.spans())
    assert first["gen_ai.tool.call.arguments"] == json.dumps(long_a, separators=(",", ":"))[:20]
    assert len(first["gen_ai.tool.call.arguments"]) == 20
    assert first["gen_ai.tool.call.arguments"] == second["gen_ai.tool.call.arguments"]
    assert (
        first["agentwatch.tool.call.arguments_hash"]
        != second["agentwatch.tool.call.arguments_hash"]
    )
    assert first["agentwatch.tool.call.arguments_hash"] == _args_hash(json.dumps(long_a))


def test_tool_call_records_no_argument_text_when_max_is_zero() -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider, max_argument_chars=0)
    with tool_call("secret.read", arguments={"key": "k"}):
        pass
    attributes = _attrs(pipeline.one("execute_tool secret.read"))
    assert "gen_ai.tool.call.arguments" not in attributes
    assert attributes["agentwatch.tool.call.arguments_hash"] == _args_hash('{"key":"k"}')


@pytest.mark.parametrize(
    "arguments",
    [
        {"b": [1, 2.5, None, True], "a": {"z": "ü", "y": "\n"}},
        '{"b": 1,   "a": 2}',  # already-serialized JSON text is recorded as is
        json.dumps(json.dumps({"q": "json in a json string"})),
        "plain text, not JSON",
        [],
    ],
)
def test_arguments_hash_is_the_backend_tool_args_hash(arguments: object) -> None:
    pipeline = Pipeline()
    configure(tracer_provider=pipeline.provider)
    with tool_call("t", arguments=arguments):
        pass
    attributes = _attrs(pipeline.one("execute_tool t"))
    recorded = attributes["gen_ai.tool.call.arguments"]
    assert attributes["agentwatch.tool.call.arguments_hash"] == _args_hash(recorded)


def test_tool_call_never_breaks_the_tool_when_telemetry_breaks() -> None:
    configure(tracer_provider=BrokenProvider())
    with tool_call("t", arguments={"a": 1}) as call:
        call.mark_failed("X", "y")
    assert not call.span.is_recording()

    @tool_call("t")
    def add(a: int, b: int) -> int:
        return a + b

    assert add(1, 2) == 3

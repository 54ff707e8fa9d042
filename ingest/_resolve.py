"""The light per-span pass done when a request is received (on the event loop).

Everything about a span that depends only on the span itself is derived later, by
ClickHouse, from the log record. What depends on *other* spans — the agent and run of
a span enclosed by an `invoke_agent` span that arrived in an earlier request — needs
memory across requests, so it is resolved here and written into the record. The pass
reads only the handful of attributes those fields come from.
"""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from ingest._conventions import PENDING_SPAN_ID, SDK_ARGUMENTS_HASH, enclosing_context

try:
    from ingest import _wirescan
except ImportError:  # not built (no compiler at install): the Python pass does the work
    _wirescan = None  # type: ignore[assignment]
from ingest._enclosing import Correction, EnclosingResolver, SpanLink, announced_link
from ingest._light_schema import LightRequest, attribute_key
from ingest._translate import any_value_to_str
from ingest._wal_record import ResolvedSpan, encode_envelope, frame

# The attributes derive_agent_fields reads for agent name, run id and tool arguments.
CONTEXT_KEYS: frozenset[str] = frozenset(
    {
        "gen_ai.agent.name",
        "agent.name",
        "traceloop.span.kind",
        "traceloop.entity.name",
        "gen_ai.conversation.id",
        "session.id",
        "traceloop.association.properties.session_id",
        "traceloop.association.properties.conversation_id",
        "traceloop.association.properties.thread_id",
        "gen_ai.tool.call.arguments",
        "openinference.span.kind",
        "input.value",
        "tool.parameters",
        "traceloop.entity.input",
        SDK_ARGUMENTS_HASH,
        PENDING_SPAN_ID,
    }
)


_CONTEXT_KEY_BYTES = frozenset(key.encode() for key in CONTEXT_KEYS)
_CONTEXT_KEY_TUPLE = tuple(sorted(_CONTEXT_KEY_BYTES))


def build_record(
    tenant: str,
    request: ExportTraceServiceRequest,
    resolver: EnclosingResolver,
    raw: bytes | None = None,
) -> bytes:
    """The framed log record for `request`: its wire bytes plus the envelope.

    `raw` is the request's own encoding when the receiver still has it unchanged.
    """
    body = raw if raw is not None else request.SerializeToString()
    resolved, corrections = resolve_request(body, resolver)
    return frame(body + encode_envelope(tenant, resolved, corrections))


SpanScan = tuple[bytes, bytes, bytes, list[bytes]]
# With decoding, a hit may already be (key, text), and the hits a dict: see _wirescan.c.
Hits = list[bytes | tuple[str, str]] | dict[str, str]
DecodedScan = tuple[bytes, bytes, bytes, Hits]


def scan_spans_python(body: bytes, keys: frozenset[bytes] = _CONTEXT_KEY_BYTES) -> list[SpanScan]:
    """(trace id, span id, parent id, [serialized context KeyValues]) per span.

    The reference for the C walker in `_wirescan.c`: a reduced protobuf schema keeps
    attributes as bytes; the key of a serialized KeyValue sits at [2 : 2 + length]
    when it is written first with a one-byte length, as every OTLP encoder does.
    """
    scanned = []
    for resource_spans in LightRequest.FromString(body).resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                hits = [kv for kv in span.attributes if attribute_key(kv) in keys]
                scanned.append((span.trace_id, span.span_id, span.parent_span_id, hits))
    return scanned


def scan_spans_decoded(body: bytes, keys: tuple[bytes, ...]) -> list[DecodedScan]:
    """`scan_spans`, with string, int and bool values decoded to text by the C walker."""
    if _wirescan is not None:
        try:
            return _wirescan.scan(body, keys, True)
        except ValueError:
            pass
    return list(scan_spans_python(body, frozenset(keys)))  # type: ignore[arg-type]


def scan_spans(body: bytes, keys: tuple[bytes, ...] = _CONTEXT_KEY_TUPLE) -> list[SpanScan]:
    """`scan_spans_python`, done by the C walker when it is built (several times faster).

    `keys` (at most 64) are the attribute keys whose serialized KeyValues are returned.
    """
    if _wirescan is not None:
        try:
            scanned: list[SpanScan] = _wirescan.scan(body, keys)  # type: ignore[assignment]
            return scanned
        except ValueError:
            pass  # something the walker does not handle: the Python pass decides
    return scan_spans_python(body, frozenset(keys))


def decoded_attributes(hits: Hits) -> dict[str, str]:
    """The walker's hits as a dict: decoded pairs as they are, the rest decoded here.

    The walker hands a dict over as it is when every hit decoded (the common case)."""
    if type(hits) is dict:
        return hits
    return dict(hit if type(hit) is tuple else _attribute(hit) for hit in hits)  # type: ignore[arg-type]


def _attribute(serialized: bytes) -> tuple[str, str]:
    """(key, value as text) of a serialized KeyValue; string values decoded directly.

    Fast path for the common layout — `0A len key 12 len 0A len text`, all lengths one
    byte — which is what OTLP encoders write for a short string attribute; anything
    else goes through the protobuf runtime.
    """
    key_end = 2 + serialized[1]
    if (
        serialized[1] < 0x80
        and len(serialized) > key_end + 3
        and serialized[key_end] == 0x12
        and serialized[key_end + 1] < 0x80
        and serialized[key_end + 2] == 0x0A
        and serialized[key_end + 3] < 0x80
        and key_end + 4 + serialized[key_end + 3] == len(serialized)
    ):
        return (
            serialized[2:key_end].decode("utf-8", "replace"),
            serialized[key_end + 4 :].decode("utf-8", "replace"),
        )
    kv = KeyValue.FromString(serialized)
    return kv.key, any_value_to_str(kv.value)


def resolve_request(
    body: bytes, resolver: EnclosingResolver
) -> tuple[list[ResolvedSpan], list[Correction]]:
    """What ClickHouse cannot derive from a span alone, for the spans that need it.

    `body` is a valid serialized ExportTraceServiceRequest. A span that names its own
    agent and run, and carries no tool arguments, needs no entry: the insert query
    reads those from its attributes, and falls back to the service name and the trace
    id. Corrections are for spans of earlier requests.
    """
    links: list[SpanLink] = []
    arg_hashes: list[str] = []
    # A pending marker (agentwatch_sdk) announces a span that started: until that span
    # ends and arrives, its place in the trace is known from the marker, so the steps
    # under a running agent span take the agent's name as they arrive.
    announced: list[SpanLink] = []
    for trace_id, span_id, parent_span_id, hits in scan_spans_decoded(body, _CONTEXT_KEY_TUPLE):
        if hits:
            context = decoded_attributes(hits)
            agent_name, run_id, arg_hash = enclosing_context(context)
            started = context.get(PENDING_SPAN_ID, "")
            if started:
                link = SpanLink(trace_id, span_id, parent_span_id, agent_name, run_id)
                announced.extend(announced_link(link, started))
        else:
            agent_name, run_id, arg_hash = _NONE
        links.append(SpanLink(trace_id, span_id, parent_span_id, agent_name, run_id))
        arg_hashes.append(arg_hash)
    attributions, corrections = resolver.add(links + announced)
    del attributions[len(links) :]
    resolved = []
    for link, (agent_name, run_id), arg_hash in zip(links, attributions, arg_hashes, strict=True):
        inherited_agent = "" if link.agent_name else agent_name
        inherited_run = "" if link.run_id else run_id
        if inherited_agent or inherited_run or arg_hash:
            resolved.append(ResolvedSpan(link.span_id, inherited_agent, inherited_run, arg_hash))
    return resolved, corrections


_NONE = ("", "", "")

"""Semantic-convention normalization: span attributes -> agent fields.

`derive_agent_fields` reads three attribute families and keeps the first non-empty
value, in this priority order: OpenTelemetry GenAI (current names, then deprecated
names), OpenInference, OpenLLMetry/Traceloop. Nothing known -> "" or 0.

Field (first non-empty wins, left to right)
  agent_name      gen_ai.agent.name > agent.name
                  > traceloop.entity.name when traceloop.span.kind == "agent"
  agent_id        gen_ai.agent.id
  run_id          gen_ai.conversation.id > session.id
                  > traceloop.association.properties.{session_id, conversation_id, thread_id}
  operation       gen_ai.operation.name (verbatim) > openinference.span.kind (mapped)
                  > traceloop.span.kind (mapped) > llm.request.type (mapped)
  tool_name       gen_ai.tool.name > tool.name
                  > traceloop.entity.name when traceloop.span.kind == "tool"
  tool_call_id    gen_ai.tool.call.id > tool.id > tool_call.id
  tool_args_hash  agentwatch.tool.call.arguments_hash (sent by agentwatch_sdk) > hash of:
                  gen_ai.tool.call.arguments
                  > input.value, then tool.parameters, on OpenInference TOOL spans
                  > traceloop.entity.input when traceloop.span.kind == "tool"
  request_model   gen_ai.request.model > llm.request.model_name > llm.model_name
                  > embedding.model_name
  response_model  gen_ai.response.model > llm.response.model_name > llm.model_name
                  > embedding.model_name
  provider        gen_ai.provider.name > gen_ai.system > llm.provider > llm.system (lowercased)
  input_tokens    gen_ai.usage.input_tokens > gen_ai.usage.prompt_tokens
                  > llm.token_count.prompt > llm.usage.prompt_tokens
  output_tokens   gen_ai.usage.output_tokens > gen_ai.usage.completion_tokens
                  > llm.token_count.completion > llm.usage.completion_tokens
  error_type      error.type (status-based errors are the caller's job)

Operation mapping (case-insensitive):
  openinference.span.kind  AGENT->invoke_agent  TOOL->execute_tool  LLM->chat  RETRIEVER->retrieval
                           EMBEDDING->embeddings  CHAIN->chain  RERANKER->rerank
                           GUARDRAIL->guardrail  EVALUATOR->evaluation  PROMPT->prompt
  traceloop.span.kind      agent->invoke_agent  tool->execute_tool  workflow->workflow  task->task
  llm.request.type         chat->chat  completion->text_completion  embedding->embeddings
                           rerank->rerank
Unknown kinds fall through to the next family.

OpenInference `tool.parameters` is specified as the tool's parameter *definition*
(smolagents records the schema there), so a TOOL span's `input.value`, which holds
the actual call input, is preferred for the arguments hash.

tool_args_hash: JSON values (one level of JSON-in-a-JSON-string is unwrapped) are
canonicalized with sorted keys and compact separators before hashing, so key order
and whitespace do not matter; other text is hashed as is. Hash: 16 hex characters of
blake2b(digest_size=8), canonical JSON written by orjson. Token counts accept "12",
"12.0", "1e3"; garbage or negative -> 0; capped at 2**63 - 1.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import orjson

_OPENINFERENCE_OPERATIONS = {
    "AGENT": "invoke_agent",
    "TOOL": "execute_tool",
    "LLM": "chat",
    "RETRIEVER": "retrieval",
    "EMBEDDING": "embeddings",
    "CHAIN": "chain",
    "RERANKER": "rerank",
    "GUARDRAIL": "guardrail",
    "EVALUATOR": "evaluation",
    "PROMPT": "prompt",
}
_TRACELOOP_OPERATIONS = {
    "agent": "invoke_agent",
    "tool": "execute_tool",
    "workflow": "workflow",
    "task": "task",
}
_LLM_REQUEST_TYPE_OPERATIONS = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
}
_MAX_TOKENS = 2**63 - 1
# Operations that are one call to a model, billed by tokens (what gets a cost).
LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
# Set by agentwatch_sdk.tool_call: the hash of the arguments before they were truncated.
SDK_ARGUMENTS_HASH = "agentwatch.tool.call.arguments_hash"
# agentwatch_sdk marker spans: "heartbeat" or "pending" (signals, not work).
MARKER_KEY = "agentwatch.marker"
# A pending marker's attributes: the span that started, and its name.
PENDING_SPAN_ID = "agentwatch.pending.span_id"
PENDING_NAME = "agentwatch.pending.name"

_JSON_OPENERS = frozenset('{["')


@dataclass(frozen=True, slots=True)
class AgentFields:
    agent_name: str = ""
    agent_id: str = ""
    run_id: str = ""
    operation: str = ""
    tool_name: str = ""
    tool_call_id: str = ""
    tool_args_hash: str = ""
    request_model: str = ""
    response_model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    error_type: str = ""


_NOTHING_KNOWN = AgentFields()  # frozen, so one shared instance is safe


def derive_agent_fields(span_attrs: Mapping[str, str]) -> AgentFields:
    """Normalize one span's (stringified) attributes; see the module docstring."""
    get = span_attrs.get
    oi_kind = (get("openinference.span.kind") or "").upper()
    tl_kind = (get("traceloop.span.kind") or "").lower()
    tl_entity = get("traceloop.entity.name") or ""
    oi_model = get("llm.model_name") or get("embedding.model_name") or ""
    agent_name = _agent_name(span_attrs, tl_kind)
    agent_id = get("gen_ai.agent.id") or ""
    run_id = _run_id(span_attrs)
    operation = get("gen_ai.operation.name") or _operation(span_attrs, oi_kind, tl_kind)
    tool_name = (
        get("gen_ai.tool.name") or get("tool.name") or (tl_entity if tl_kind == "tool" else "")
    )
    tool_call_id = get("gen_ai.tool.call.id") or get("tool.id") or get("tool_call.id") or ""
    tool_args_hash = _tool_args_hash(span_attrs, oi_kind, tl_kind)
    request_model = get("gen_ai.request.model") or get("llm.request.model_name") or oi_model
    response_model = get("gen_ai.response.model") or get("llm.response.model_name") or oi_model
    provider = (
        get("gen_ai.provider.name")
        or get("gen_ai.system")
        or get("llm.provider")
        or get("llm.system")
    )
    input_tokens = _tokens(
        get("gen_ai.usage.input_tokens")
        or get("gen_ai.usage.prompt_tokens")
        or get("llm.token_count.prompt")
        or get("llm.usage.prompt_tokens")
    )
    output_tokens = _tokens(
        get("gen_ai.usage.output_tokens")
        or get("gen_ai.usage.completion_tokens")
        or get("llm.token_count.completion")
        or get("llm.usage.completion_tokens")
    )
    error_type = get("error.type") or ""
    known = (
        operation
        or agent_name
        or run_id
        or agent_id
        or tool_name
        or tool_call_id
        or tool_args_hash
        or request_model
        or response_model
        or provider
        or input_tokens
        or output_tokens
        or error_type
    )
    if not known:
        return _NOTHING_KNOWN  # most non-GenAI spans: skip building a frozen dataclass
    return AgentFields(
        agent_name=agent_name,
        agent_id=agent_id,
        run_id=run_id,
        operation=operation,
        tool_name=tool_name,
        tool_call_id=tool_call_id,
        tool_args_hash=tool_args_hash,
        request_model=request_model,
        response_model=response_model,
        provider=provider.lower() if provider else "",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        error_type=error_type,
    )


class StepFields(NamedTuple):
    agent_name: str
    run_id: str
    operation: str
    tool_name: str
    input_tokens: int
    output_tokens: int
    error_type: str
    model: str  # the response model, else the request model
    provider: str


def derive_step_fields(span_attrs: Mapping[str, str]) -> StepFields:
    """The fields the detectors read: `derive_agent_fields`' rules, fewer fields.

    The arguments hash is left out: ingest resolved it on receipt (the envelope).
    """
    get = span_attrs.get
    oi_kind = (get("openinference.span.kind") or "").upper()
    tl_kind = (get("traceloop.span.kind") or "").lower()
    fields = (
        _agent_name(span_attrs, tl_kind),
        _run_id(span_attrs),
        get("gen_ai.operation.name") or _operation(span_attrs, oi_kind, tl_kind),
        get("gen_ai.tool.name")
        or get("tool.name")
        or ((get("traceloop.entity.name") or "") if tl_kind == "tool" else ""),
        _tokens(
            get("gen_ai.usage.input_tokens")
            or get("gen_ai.usage.prompt_tokens")
            or get("llm.token_count.prompt")
            or get("llm.usage.prompt_tokens")
        ),
        _tokens(
            get("gen_ai.usage.output_tokens")
            or get("gen_ai.usage.completion_tokens")
            or get("llm.token_count.completion")
            or get("llm.usage.completion_tokens")
        ),
        get("error.type") or "",
        get("gen_ai.response.model")
        or get("llm.response.model_name")
        or get("gen_ai.request.model")
        or get("llm.request.model_name")
        or get("llm.model_name")
        or get("embedding.model_name")
        or "",
        (
            get("gen_ai.provider.name")
            or get("gen_ai.system")
            or get("llm.provider")
            or get("llm.system")
            or ""
        ).lower(),
    )
    return new_named_tuple(StepFields, fields)


# `new_named_tuple(Type, values)` builds a NamedTuple from all its fields in order
# without calling Type(...), whose generated __new__ is a Python function: ~0.25 µs
# more per call, on paths that build one per span the detectors read.
new_named_tuple = tuple.__new__


def enclosing_context(span_attrs: Mapping[str, str]) -> tuple[str, str, str]:
    """(agent name, run id, tool args hash): the fields ingest resolves across spans.

    The same rules as `derive_agent_fields`, for the receive path, which needs only these.
    """
    tl_kind = (span_attrs.get("traceloop.span.kind") or "").lower()
    oi_kind = (span_attrs.get("openinference.span.kind") or "").upper()
    return (
        _agent_name(span_attrs, tl_kind),
        _run_id(span_attrs),
        _tool_args_hash(span_attrs, oi_kind, tl_kind),
    )


def _agent_name(span_attrs: Mapping[str, str], tl_kind: str) -> str:
    get = span_attrs.get
    tl_entity = get("traceloop.entity.name") if tl_kind == "agent" else ""
    return get("gen_ai.agent.name") or get("agent.name") or tl_entity or ""


def _run_id(span_attrs: Mapping[str, str]) -> str:
    get = span_attrs.get
    return (
        get("gen_ai.conversation.id")
        or get("session.id")
        or get("traceloop.association.properties.session_id")
        or get("traceloop.association.properties.conversation_id")
        or get("traceloop.association.properties.thread_id")
        or ""
    )


def _operation(span_attrs: Mapping[str, str], oi_kind: str, tl_kind: str) -> str:
    """The operation when `gen_ai.operation.name` is absent: OpenInference, then Traceloop."""
    operation = _OPENINFERENCE_OPERATIONS.get(oi_kind) or _TRACELOOP_OPERATIONS.get(tl_kind)
    if operation:
        return operation
    request_type = span_attrs.get("llm.request.type")
    if request_type:
        return _LLM_REQUEST_TYPE_OPERATIONS.get(request_type.lower(), "")
    return ""


def _tool_args(span_attrs: Mapping[str, str], oi_kind: str, tl_kind: str) -> str:
    """The raw tool-call arguments text, or "" when the span carries none."""
    get = span_attrs.get
    args = get("gen_ai.tool.call.arguments")
    if not args and oi_kind == "TOOL":
        args = get("input.value") or get("tool.parameters")
    if not args and tl_kind == "tool":
        args = get("traceloop.entity.input")
    return args or ""


def _tool_args_hash(span_attrs: Mapping[str, str], oi_kind: str, tl_kind: str) -> str:
    """The SDK's hash of the full arguments when it sent one, else a hash of the text."""
    sent = span_attrs.get(SDK_ARGUMENTS_HASH)
    return sent or _args_hash(_tool_args(span_attrs, oi_kind, tl_kind))


def _args_hash(args: str) -> str:
    """A 16-hex-char hash of `args`, canonicalized first when it is JSON; "" for no args."""
    text = args.strip() if args else ""
    if not text:
        return ""
    return hashlib.blake2b(_canonical_json(text), digest_size=8).hexdigest()


def _canonical_json(text: str) -> bytes:
    """`text` re-serialized with sorted keys and no whitespace, or as is when not JSON.

    orjson, because this runs for every tool call on the receive path (about ten
    times faster than the json module here). Documents it refuses (NaN, integers
    beyond 64 bits, nesting past 1024) are hashed as written.
    """
    if text[:1] in _JSON_OPENERS:
        try:
            value = orjson.loads(text)
            if isinstance(value, str) and value.lstrip()[:1] in _JSON_OPENERS:
                value = orjson.loads(value)  # a JSON document stored as a JSON string
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
            pass
    return text.encode("utf-8", "surrogatepass")


def _tokens(value: str | None) -> int:
    """A non-negative token count from text such as "12" or "12.0"; anything else -> 0."""
    if not value:
        return 0
    if len(value) < 19 and value.isascii() and value.isdigit():
        return int(value)
    try:
        number = float(value)
    except ValueError:
        return 0
    if not math.isfinite(number) or number < 1:
        return 0
    return min(int(number), _MAX_TOKENS)

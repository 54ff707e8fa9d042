"""Unit tests for ingest._conventions: attribute sets as real instrumentations emit them."""

from __future__ import annotations

import hashlib
import json

import pytest

from ingest._conventions import AgentFields, derive_agent_fields

# --- Realistic attribute sets (already stringified, as `attributes_to_map` produces) ---

# opentelemetry-instrumentation-openai-v2, chat completion (gen_ai.system era).
OTEL_OPENAI_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.request.temperature": "0.2",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-AZ3sS1l9kFzZ6Qe1",
    "gen_ai.response.finish_reasons": '["stop"]',
    "gen_ai.usage.input_tokens": "24",
    "gen_ai.usage.output_tokens": "9",
    "gen_ai.openai.response.service_tier": "default",
    "server.address": "api.openai.com",
    "server.port": "443",
}

# invoke_agent span per gen-ai-agent-spans.md (current names).
OTEL_INVOKE_AGENT = {
    "gen_ai.operation.name": "invoke_agent",
    "gen_ai.provider.name": "openai",
    "gen_ai.agent.name": "Math Tutor",
    "gen_ai.agent.id": "asst_5j66UpCpwteGg4YSxUnt7lPY",
    "gen_ai.agent.description": "Helps with math problems",
    "gen_ai.conversation.id": "conv_5j66UpCpwteGg4YSxUnt7lPY",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": "812",
    "gen_ai.usage.output_tokens": "64",
}

# execute_tool span per gen-ai-spans.md.
OTEL_EXECUTE_TOOL = {
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "get_weather",
    "gen_ai.tool.type": "function",
    "gen_ai.tool.description": "Get the weather for a location",
    "gen_ai.tool.call.id": "call_mszuSIzqtI65i1wAUOE8w5H4",
    "gen_ai.tool.call.arguments": '{"location":"Paris","date":"2025-10-01"}',
    "gen_ai.tool.call.result": '{"conditions":"rainy","temperature":57}',
    "gen_ai.conversation.id": "conv_5j66UpCpwteGg4YSxUnt7lPY",
}

# Older OpenLLMetry openai instrumentation: deprecated gen_ai.system + prompt_tokens.
OPENLLMETRY_CHAT = {
    "llm.request.type": "chat",
    "gen_ai.system": "OpenAI",
    "gen_ai.request.model": "gpt-3.5-turbo",
    "gen_ai.response.model": "gpt-3.5-turbo-0125",
    "gen_ai.openai.api_base": "https://api.openai.com/v1/",
    "llm.is_streaming": "false",
    "llm.usage.total_tokens": "35",
    "gen_ai.usage.prompt_tokens": "15",
    "gen_ai.usage.completion_tokens": "20",
    "gen_ai.prompt.0.role": "user",
    "gen_ai.prompt.0.content": "Tell me a joke about opentelemetry",
    "gen_ai.completion.0.role": "assistant",
    "gen_ai.completion.0.finish_reason": "stop",
    "traceloop.workflow.name": "joke_generator",
    "traceloop.association.properties.session_id": "sess-42",
}

OPENLLMETRY_WORKFLOW = {
    "traceloop.span.kind": "workflow",
    "traceloop.workflow.name": "joke_generator",
    "traceloop.entity.name": "joke_generator",
    "traceloop.entity.input": '{"args": [], "kwargs": {}}',
    "traceloop.entity.output": '"Why did the span cross the road?"',
    "traceloop.association.properties.session_id": "sess-42",
}

OPENLLMETRY_AGENT = {
    "traceloop.span.kind": "agent",
    "traceloop.workflow.name": "joke_generator",
    "traceloop.entity.name": "joke_agent",
    "traceloop.entity.path": "",
    "traceloop.entity.input": '{"args": ["tell me a joke"], "kwargs": {}}',
    "traceloop.association.properties.session_id": "sess-42",
}

OPENLLMETRY_TOOL = {
    "traceloop.span.kind": "tool",
    "traceloop.workflow.name": "joke_generator",
    "traceloop.entity.name": "get_weather",
    "traceloop.entity.path": "joke_agent",
    "traceloop.entity.input": '{"args": ["Paris"], "kwargs": {"unit": "celsius"}}',
    "traceloop.entity.output": '"rainy, 14C"',
    "traceloop.association.properties.session_id": "sess-42",
}

# openinference-instrumentation-openai, chat completion that requested a tool call.
OPENINFERENCE_LLM = {
    "openinference.span.kind": "LLM",
    "llm.model_name": "gpt-4o-mini-2024-07-18",
    "llm.provider": "openai",
    "llm.system": "openai",
    "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0.2}',
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": "What's the weather in Paris?",
    "llm.output_messages.0.message.role": "assistant",
    "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_62136355",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "get_weather",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": (
        '{"city": "Paris"}'
    ),
    "llm.token_count.prompt": "52",
    "llm.token_count.completion": "17",
    "llm.token_count.total": "69",
    "input.value": '{"messages": [{"role": "user", "content": "What\'s the weather in Paris?"}]}',
    "input.mime_type": "application/json",
    "session.id": "26bcd3d2-cad2-443d-a23c-625e47f3324a",
}

# openinference-instrumentation-langchain, agent run.
OPENINFERENCE_AGENT = {
    "openinference.span.kind": "AGENT",
    "agent.name": "research_agent",
    "input.value": '{"input": "What is the weather in Paris?"}',
    "input.mime_type": "application/json",
    "output.value": '{"output": "Rainy, 14C."}',
    "output.mime_type": "application/json",
    "metadata": '{"ls_run_depth": 0}',
    "session.id": "26bcd3d2-cad2-443d-a23c-625e47f3324a",
}

# openinference-instrumentation-openai-agents, function tool call.
OPENINFERENCE_TOOL = {
    "openinference.span.kind": "TOOL",
    "tool.name": "get_weather",
    "tool.id": "call_62136355",
    "input.value": '{"city": "Paris"}',
    "input.mime_type": "application/json",
    "output.value": "Rainy, 14C",
    "session.id": "26bcd3d2-cad2-443d-a23c-625e47f3324a",
}

# openinference-instrumentation-smolagents: tool.parameters is the tool's *schema*.
SMOLAGENTS_TOOL_SCHEMA = (
    '{"query": {"type": "string", "description": "The search query to perform."}}'
)


def _hash(canonical: str) -> str:
    return hashlib.blake2b(canonical.encode(), digest_size=8).hexdigest()


def _args_hash(arguments: str) -> str:
    return derive_agent_fields({"gen_ai.tool.call.arguments": arguments}).tool_args_hash


# --- Whole spans, per convention -------------------------------------------------------


def test_empty_attributes_yield_all_defaults() -> None:
    assert derive_agent_fields({}) == AgentFields()


def test_non_genai_http_span_yields_all_defaults() -> None:
    attrs = {
        "http.request.method": "GET",
        "url.full": "https://example.com/api?q=1",
        "http.response.status_code": "200",
        "server.address": "example.com",
    }
    assert derive_agent_fields(attrs) == AgentFields()


def test_otel_openai_chat_span_yields_models_provider_and_tokens() -> None:
    assert derive_agent_fields(OTEL_OPENAI_CHAT) == AgentFields(
        operation="chat",
        request_model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        provider="openai",
        input_tokens=24,
        output_tokens=9,
    )


def test_otel_invoke_agent_span_yields_agent_identity_and_run_id() -> None:
    assert derive_agent_fields(OTEL_INVOKE_AGENT) == AgentFields(
        agent_name="Math Tutor",
        agent_id="asst_5j66UpCpwteGg4YSxUnt7lPY",
        run_id="conv_5j66UpCpwteGg4YSxUnt7lPY",
        operation="invoke_agent",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
        provider="openai",
        input_tokens=812,
        output_tokens=64,
    )


def test_otel_execute_tool_span_yields_tool_name_call_id_and_args_hash() -> None:
    fields = derive_agent_fields(OTEL_EXECUTE_TOOL)
    assert fields == AgentFields(
        run_id="conv_5j66UpCpwteGg4YSxUnt7lPY",
        operation="execute_tool",
        tool_name="get_weather",
        tool_call_id="call_mszuSIzqtI65i1wAUOE8w5H4",
        tool_args_hash=_hash('{"date":"2025-10-01","location":"Paris"}'),
    )


def test_deprecated_gen_ai_system_and_prompt_tokens_are_read() -> None:
    fields = derive_agent_fields(OPENLLMETRY_CHAT)
    assert fields == AgentFields(
        run_id="sess-42",
        operation="chat",
        request_model="gpt-3.5-turbo",
        response_model="gpt-3.5-turbo-0125",
        provider="openai",
        input_tokens=15,
        output_tokens=20,
    )


def test_openinference_llm_span_yields_model_provider_tokens_and_no_tool_fields() -> None:
    fields = derive_agent_fields(OPENINFERENCE_LLM)
    assert fields == AgentFields(
        run_id="26bcd3d2-cad2-443d-a23c-625e47f3324a",
        operation="chat",
        request_model="gpt-4o-mini-2024-07-18",
        response_model="gpt-4o-mini-2024-07-18",
        provider="openai",
        input_tokens=52,
        output_tokens=17,
    )


def test_openinference_agent_span_yields_agent_name_and_session() -> None:
    fields = derive_agent_fields(OPENINFERENCE_AGENT)
    assert fields == AgentFields(
        agent_name="research_agent",
        run_id="26bcd3d2-cad2-443d-a23c-625e47f3324a",
        operation="invoke_agent",
    )


def test_openinference_tool_span_yields_tool_name_call_id_and_args_hash() -> None:
    fields = derive_agent_fields(OPENINFERENCE_TOOL)
    assert fields == AgentFields(
        run_id="26bcd3d2-cad2-443d-a23c-625e47f3324a",
        operation="execute_tool",
        tool_name="get_weather",
        tool_call_id="call_62136355",
        tool_args_hash=_hash('{"city":"Paris"}'),
    )


def test_openinference_tool_span_hashes_call_input_not_parameter_schema() -> None:
    first = {
        "openinference.span.kind": "TOOL",
        "tool.name": "web_search",
        "tool.parameters": SMOLAGENTS_TOOL_SCHEMA,
        "input.value": '{"args": [], "kwargs": {"query": "otel genai"}}',
    }
    second = {**first, "input.value": '{"args": [], "kwargs": {"query": "openinference"}}'}
    assert derive_agent_fields(first).tool_args_hash != derive_agent_fields(second).tool_args_hash


def test_openinference_tool_parameters_are_hashed_when_input_value_is_absent() -> None:
    attrs = {"openinference.span.kind": "TOOL", "tool.parameters": '{"command": "wc -c"}'}
    assert derive_agent_fields(attrs).tool_args_hash == _hash('{"command":"wc -c"}')


def test_openinference_tool_call_id_alias_is_read() -> None:
    attrs = {"openinference.span.kind": "TOOL", "tool.name": "lookup", "tool_call.id": "oc1"}
    assert derive_agent_fields(attrs).tool_call_id == "oc1"


def test_openllmetry_workflow_span_yields_workflow_operation_only() -> None:
    assert derive_agent_fields(OPENLLMETRY_WORKFLOW) == AgentFields(
        run_id="sess-42", operation="workflow"
    )


def test_openllmetry_agent_span_yields_agent_name_from_entity_name() -> None:
    assert derive_agent_fields(OPENLLMETRY_AGENT) == AgentFields(
        agent_name="joke_agent", run_id="sess-42", operation="invoke_agent"
    )


def test_openllmetry_tool_span_yields_tool_name_and_hash_of_wrapped_input() -> None:
    fields = derive_agent_fields(OPENLLMETRY_TOOL)
    assert fields == AgentFields(
        run_id="sess-42",
        operation="execute_tool",
        tool_name="get_weather",
        tool_args_hash=_hash('{"args":["Paris"],"kwargs":{"unit":"celsius"}}'),
    )


@pytest.mark.parametrize("kind", ["task", "workflow", "unknown"])
def test_traceloop_entity_name_is_neither_agent_nor_tool_on_other_kinds(kind: str) -> None:
    attrs = {
        "traceloop.span.kind": kind,
        "traceloop.entity.name": "summarize",
        "traceloop.entity.input": '{"args": [1], "kwargs": {}}',
    }
    fields = derive_agent_fields(attrs)
    assert (fields.agent_name, fields.tool_name, fields.tool_args_hash) == ("", "", "")


def test_openllmetry_old_llm_usage_tokens_and_completion_request_type() -> None:
    attrs = {
        "llm.request.type": "completion",
        "llm.vendor": "OpenAI",
        "llm.request.model": "text-davinci-003",
        "llm.usage.prompt_tokens": "5",
        "llm.usage.completion_tokens": "7",
    }
    fields = derive_agent_fields(attrs)
    assert (fields.operation, fields.input_tokens, fields.output_tokens) == (
        "text_completion",
        5,
        7,
    )


@pytest.mark.parametrize(
    "key",
    [
        "traceloop.association.properties.session_id",
        "traceloop.association.properties.conversation_id",
        "traceloop.association.properties.thread_id",
    ],
)
def test_traceloop_association_properties_give_run_id(key: str) -> None:
    assert derive_agent_fields({key: "thread-7"}).run_id == "thread-7"


def test_openinference_embedding_model_name_is_the_model() -> None:
    attrs = {"openinference.span.kind": "EMBEDDING", "embedding.model_name": "bge-small"}
    fields = derive_agent_fields(attrs)
    assert (fields.operation, fields.request_model, fields.response_model) == (
        "embeddings",
        "bge-small",
        "bge-small",
    )


def test_error_type_comes_from_error_type_attribute_only() -> None:
    assert derive_agent_fields({"error.type": "timeout"}).error_type == "timeout"
    assert derive_agent_fields({"exception.type": "ValueError"}).error_type == ""


# --- Priority between conventions -------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "keys"),
    [
        (
            "agent_name",
            ["gen_ai.agent.name", "agent.name"],
        ),
        (
            "run_id",
            [
                "gen_ai.conversation.id",
                "session.id",
                "traceloop.association.properties.session_id",
                "traceloop.association.properties.conversation_id",
                "traceloop.association.properties.thread_id",
            ],
        ),
        ("tool_name", ["gen_ai.tool.name", "tool.name"]),
        ("tool_call_id", ["gen_ai.tool.call.id", "tool.id", "tool_call.id"]),
        (
            "request_model",
            ["gen_ai.request.model", "llm.request.model_name", "llm.model_name"],
        ),
        (
            "response_model",
            ["gen_ai.response.model", "llm.response.model_name", "llm.model_name"],
        ),
        (
            "provider",
            ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"],
        ),
        ("error_type", ["error.type"]),
    ],
)
def test_string_field_takes_first_present_key_in_priority_order(
    field: str, keys: list[str]
) -> None:
    for index, key in enumerate(keys):
        attrs = {lower: f"v{position}" for position, lower in enumerate(keys) if position >= index}
        assert getattr(derive_agent_fields(attrs), field) == f"v{index}", key


@pytest.mark.parametrize(
    ("field", "keys"),
    [
        (
            "input_tokens",
            [
                "gen_ai.usage.input_tokens",
                "gen_ai.usage.prompt_tokens",
                "llm.token_count.prompt",
                "llm.usage.prompt_tokens",
            ],
        ),
        (
            "output_tokens",
            [
                "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens",
                "llm.token_count.completion",
                "llm.usage.completion_tokens",
            ],
        ),
    ],
)
def test_token_field_takes_first_present_key_in_priority_order(field: str, keys: list[str]) -> None:
    for index, key in enumerate(keys):
        attrs = {lower: str(10 + pos) for pos, lower in enumerate(keys) if pos >= index}
        assert getattr(derive_agent_fields(attrs), field) == 10 + index, key


def test_empty_higher_priority_value_falls_through_to_next_convention() -> None:
    attrs = {"gen_ai.agent.name": "", "agent.name": "planner", "gen_ai.usage.input_tokens": ""}
    attrs["llm.token_count.prompt"] = "3"
    fields = derive_agent_fields(attrs)
    assert (fields.agent_name, fields.input_tokens) == ("planner", 3)


def test_span_carrying_all_three_conventions_prefers_otel_genai() -> None:
    attrs = {
        **OPENLLMETRY_AGENT,
        **OPENINFERENCE_AGENT,
        **OTEL_INVOKE_AGENT,
    }
    fields = derive_agent_fields(attrs)
    assert (fields.agent_name, fields.run_id, fields.operation) == (
        "Math Tutor",
        "conv_5j66UpCpwteGg4YSxUnt7lPY",
        "invoke_agent",
    )


def test_openinference_beats_traceloop_when_both_present() -> None:
    fields = derive_agent_fields({**OPENLLMETRY_TOOL, **OPENINFERENCE_TOOL})
    assert (fields.run_id, fields.tool_args_hash) == (
        "26bcd3d2-cad2-443d-a23c-625e47f3324a",
        _hash('{"city":"Paris"}'),
    )


def test_gen_ai_tool_call_arguments_beat_openinference_input_value() -> None:
    attrs = {**OPENINFERENCE_TOOL, "gen_ai.tool.call.arguments": '{"city": "Lyon"}'}
    assert derive_agent_fields(attrs).tool_args_hash == _hash('{"city":"Lyon"}')


# --- Operation mapping ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({"gen_ai.operation.name": "create_agent"}, "create_agent"),
        ({"gen_ai.operation.name": "text_completion"}, "text_completion"),
        ({"gen_ai.operation.name": "generate_content"}, "generate_content"),
        ({"gen_ai.operation.name": "embeddings"}, "embeddings"),
        ({"gen_ai.operation.name": "retrieval"}, "retrieval"),
        ({"openinference.span.kind": "AGENT"}, "invoke_agent"),
        ({"openinference.span.kind": "TOOL"}, "execute_tool"),
        ({"openinference.span.kind": "LLM"}, "chat"),
        ({"openinference.span.kind": "RETRIEVER"}, "retrieval"),
        ({"openinference.span.kind": "EMBEDDING"}, "embeddings"),
        ({"openinference.span.kind": "CHAIN"}, "chain"),
        ({"openinference.span.kind": "RERANKER"}, "rerank"),
        ({"openinference.span.kind": "GUARDRAIL"}, "guardrail"),
        ({"openinference.span.kind": "EVALUATOR"}, "evaluation"),
        ({"openinference.span.kind": "PROMPT"}, "prompt"),
        ({"openinference.span.kind": "agent"}, "invoke_agent"),
        ({"openinference.span.kind": "Tool"}, "execute_tool"),
        ({"openinference.span.kind": "UNKNOWN"}, ""),
        ({"traceloop.span.kind": "agent"}, "invoke_agent"),
        ({"traceloop.span.kind": "tool"}, "execute_tool"),
        ({"traceloop.span.kind": "workflow"}, "workflow"),
        ({"traceloop.span.kind": "task"}, "task"),
        ({"traceloop.span.kind": "unknown"}, ""),
        ({"llm.request.type": "chat"}, "chat"),
        ({"llm.request.type": "completion"}, "text_completion"),
        ({"llm.request.type": "embedding"}, "embeddings"),
        ({"llm.request.type": "rerank"}, "rerank"),
        ({"llm.request.type": "unknown"}, ""),
    ],
)
def test_operation_is_derived_from_each_convention(attrs: dict[str, str], expected: str) -> None:
    assert derive_agent_fields(attrs).operation == expected


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            {"gen_ai.operation.name": "chat", "openinference.span.kind": "CHAIN"},
            "chat",
        ),
        (
            {"openinference.span.kind": "LLM", "traceloop.span.kind": "task"},
            "chat",
        ),
        (
            {"traceloop.span.kind": "task", "llm.request.type": "chat"},
            "task",
        ),
        (
            {"openinference.span.kind": "UNKNOWN", "traceloop.span.kind": "tool"},
            "execute_tool",
        ),
    ],
)
def test_operation_follows_convention_priority(attrs: dict[str, str], expected: str) -> None:
    assert derive_agent_fields(attrs).operation == expected


# --- Tool-argument hash -----------------------------------------------------------------


def test_args_hash_is_16_hex_chars_of_blake2b_over_canonical_json() -> None:
    digest = _args_hash('{"b": 2, "a": [1, {"d": 4, "c": 3}]}')
    assert len(digest) == 16
    assert digest == _hash('{"a":[1,{"c":3,"d":4}],"b":2}')


def test_args_hash_is_stable_across_key_order_and_whitespace() -> None:
    variants = [
        '{"location":"Paris","date":"2025-10-01","opts":{"unit":"C","days":3}}',
        '{"date": "2025-10-01", "location": "Paris", "opts": {"days": 3, "unit": "C"}}',
        '  {\n  "opts": {"unit": "C", "days": 3},\n  "date": "2025-10-01",\n'
        '  "location": "Paris"\n}\n',
    ]
    assert len({_args_hash(variant) for variant in variants}) == 1


@pytest.mark.parametrize(
    "other",
    [
        '{"location": "Lyon", "date": "2025-10-01"}',
        '{"location": "Paris", "date": "2025-10-02"}',
        '{"location": "Paris"}',
        '["Paris", "2025-10-01"]',
        '{"location": "Paris", "date": "2025-10-01", "extra": null}',
    ],
)
def test_args_hash_differs_for_different_args(other: str) -> None:
    assert _args_hash(other) != _args_hash('{"location": "Paris", "date": "2025-10-01"}')


def test_args_hash_is_the_same_across_conventions_for_the_same_json() -> None:
    otel = _args_hash('{"city":"Paris","days":2}')
    openinference = derive_agent_fields(
        {"openinference.span.kind": "TOOL", "input.value": '{ "days": 2, "city": "Paris" }'}
    ).tool_args_hash
    assert otel == openinference


def test_args_hash_keeps_non_ascii_text_unescaped() -> None:
    assert _args_hash('{"city": "Z\\u00fcrich"}') == _hash('{"city":"Zürich"}')


def test_args_hash_unwraps_json_document_stored_as_json_string() -> None:
    assert _args_hash(json.dumps('{"b": 1, "a": 2}')) == _hash('{"a":2,"b":1}')


@pytest.mark.parametrize(
    ("raw", "hashed"),
    [
        ("Paris", "Paris"),
        ("  Paris \n", "Paris"),
        ("{'city': 'Paris'}", "{'city': 'Paris'}"),
        ('{"city": "Paris"', '{"city": "Paris"'),
        ("42", "42"),
    ],
)
def test_args_hash_of_non_json_text_is_over_the_stripped_text(raw: str, hashed: str) -> None:
    assert _args_hash(raw) == _hash(hashed)


@pytest.mark.parametrize("raw", ["", "   ", "\n"])
def test_blank_args_give_no_hash(raw: str) -> None:
    assert _args_hash(raw) == ""


@pytest.mark.parametrize(
    "raw",
    ["[" * 100_000 + "]" * 100_000, '{"s": "\\ud800"}', '{"x": NaN}', '"\\"{not json"'],
)
def test_args_hash_never_raises_on_hostile_input(raw: str) -> None:
    digest = _args_hash(raw)
    assert len(digest) == 16
    assert set(digest) <= set("0123456789abcdef")


def test_input_value_is_not_args_on_non_tool_openinference_spans() -> None:
    assert derive_agent_fields(OPENINFERENCE_AGENT).tool_args_hash == ""


# --- Token parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        ("0", 0),
        ("12.0", 12),
        ("12.9", 12),
        (" 7 ", 7),
        ("1e3", 1000),
        ("-5", 0),
        ("-0.5", 0),
        ("0.4", 0),
        ("", 0),
        ("abc", 0),
        ("true", 0),
        ("nan", 0),
        ("inf", 0),
        ("-inf", 0),
        ("0x10", 0),
        ("²", 0),
        ("12 tokens", 0),
        ("9" * 30, 2**63 - 1),
        ("123456789012345678", 123456789012345678),
    ],
)
def test_token_counts_parse_tolerantly(raw: str, expected: int) -> None:
    fields = derive_agent_fields(
        {"gen_ai.usage.input_tokens": raw, "gen_ai.usage.output_tokens": raw}
    )
    assert (fields.input_tokens, fields.output_tokens) == (expected, expected)


def test_token_count_with_thousands_of_digits_does_not_raise() -> None:
    assert derive_agent_fields({"llm.token_count.prompt": "1" * 5000}).input_tokens >= 0


def test_hash_sent_by_the_sdk_wins_over_hashing_the_truncated_arguments() -> None:
    attrs = {
        "gen_ai.tool.name": "crm.lookup",
        "gen_ai.tool.call.arguments": '{"customer_id": "c-1", "note": "trunc',
        "agentwatch.tool.call.arguments_hash": "0123456789abcdef",
    }

    assert derive_agent_fields(attrs).tool_args_hash == "0123456789abcdef"

"""Semantic-convention normalization: attribute sets -> agent fields.

STUB — being written by a helper. Interface is fixed; see derive_agent_fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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


def derive_agent_fields(span_attrs: Mapping[str, str]) -> AgentFields:
    return AgentFields()

"""Names the backend reads (contract: documented in the package docstring)."""

from __future__ import annotations

from typing import Final

SCOPE_NAME: Final = "agentwatch_sdk"
SCOPE_VERSION: Final = "0.1.0"

MARKER: Final = "agentwatch.marker"
HEARTBEAT_SPAN: Final = "agentwatch.heartbeat"
HEARTBEAT_SEQ: Final = "agentwatch.heartbeat.seq"
PENDING_SPAN: Final = "agentwatch.pending"
PENDING_SPAN_ID: Final = "agentwatch.pending.span_id"
PENDING_NAME: Final = "agentwatch.pending.name"
PENDING_START: Final = "agentwatch.pending.start_time_unix_nano"
TOOL_ARGUMENTS_HASH: Final = "agentwatch.tool.call.arguments_hash"

# GenAI semantic conventions.
OPERATION: Final = "gen_ai.operation.name"
AGENT_NAME: Final = "gen_ai.agent.name"
TOOL_NAME: Final = "gen_ai.tool.name"
TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
TOOL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
ERROR_TYPE: Final = "error.type"

-- Flat span rows (ingest/_flat_rows.py: one per span, attribute maps already text) ->
-- otel_traces rows, with the agent columns and the cost derived inside ClickHouse.
-- `ingest/_translate.py` is the same mapping in Python: the reference that tests hold
-- this query to.
--
-- Placeholders: {database}, {source} (file(...) for chDB, input(...) for a server),
-- and the repeated expressions (convention chains, prices) from _insert_sql.py.
INSERT INTO {database}.otel_traces
-- Cost (LLM calls only): the span's own reported cost wins, else the price table's
-- entry in effect at the span's start (ingest/_prices.py; NULL when none matches).
-- Priced a level up, over plain columns: inlined into each price's condition, the
-- model and provider expressions made analysing the query ten times slower.
SELECT
    * EXCEPT (
        cost_model, cost_provider, cost_at_ns, cost_cached_input_tokens, cost_reasoning_tokens,
        cost_reported, price_index
    ),
    coalesce(cost_reported, {table_cost}) AS CostUsd,
    if(isNotNull(cost_reported), 'span', {price_id}) AS CostPriceId
FROM (
SELECT *, {price_index} AS price_index
FROM (
SELECT
    Timestamp,
    TraceId,
    SpanId,
    ParentSpanId,
    TraceState,
    SpanName,
    SpanKind,
    ServiceName,
    ResourceAttributes,
    ScopeName,
    ScopeVersion,
    SpanAttributes,
    Duration,
    StatusCode,
    StatusMessage,
    EventsTimestamp AS `Events.Timestamp`,
    EventsName AS `Events.Name`,
    EventsAttributes AS `Events.Attributes`,
    LinksTraceId AS `Links.TraceId`,
    LinksSpanId AS `Links.SpanId`,
    LinksTraceState AS `Links.TraceState`,
    LinksAttributes AS `Links.Attributes`,
    TenantId,
    {agent_name} AS AgentName,
    conv['gen_ai.agent.id'] AS AgentId,
    {run_id} AS RunId,
    {operation} AS Operation,
    {tool_name} AS ToolName,
    {tool_call_id} AS ToolCallId,
    ToolArgsHash,
    {request_model} AS RequestModel,
    {response_model} AS ResponseModel,
    {provider} AS Provider,
    {input_tokens} AS InputTokens,
    {output_tokens} AS OutputTokens,
    multiIf(conv['error.type'] != '', conv['error.type'], StatusCode = 'Error', ExceptionType, '')
        AS ErrorType,
    toUInt8(StatusCode = 'Error' OR ErrorType != '') AS IsError,
    conv['agentwatch.marker'] AS Marker,
    if(ResponseModel != '', ResponseModel, RequestModel) AS cost_model,
    Provider AS cost_provider,
    toUnixTimestamp64Nano(Timestamp) AS cost_at_ns,
    {cached_input_tokens} AS cost_cached_input_tokens,
    {reasoning_tokens} AS cost_reasoning_tokens,
    {reported_cost} AS cost_reported
FROM (
    SELECT *, mapFilter((k, v) -> k IN ({convention_keys}), SpanAttributes) AS conv
    FROM {source}
)
))

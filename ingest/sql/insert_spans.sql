-- OTLP write-ahead-log records -> otel_traces rows, entirely inside ClickHouse.
--
-- ClickHouse parses the protobuf records (format Protobuf, schema otlp_record.proto),
-- flattens resource -> scope -> span with ARRAY JOIN and normalizes the agent columns,
-- so Python never touches a span attribute on the hot path. `ingest/_translate.py` is
-- the same mapping in Python: the reference that tests hold this query to.
--
-- Placeholders: {database}, {source} (file(...) for chDB, input(...) for a server),
-- and the repeated expressions (attribute maps, convention chains) from _insert_sql.py.
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
    fromUnixTimestamp64Nano(toInt64(sp.start_time_unix_nano)) AS Timestamp,
    lower(hex(sp.trace_id)) AS TraceId,
    lower(hex(sp.span_id)) AS SpanId,
    lower(hex(sp.parent_span_id)) AS ParentSpanId,
    sp.trace_state AS TraceState,
    sp.name AS SpanName,
    if(sp.kind BETWEEN 0 AND 5,
       ['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer'][sp.kind + 1],
       'Unspecified') AS SpanKind,
    resource_attrs['service.name'] AS ServiceName,
    resource_attrs AS ResourceAttributes,
    ss.scope.name AS ScopeName,
    ss.scope.version AS ScopeVersion,
    attrs AS SpanAttributes,
    if(sp.end_time_unix_nano > sp.start_time_unix_nano,
       sp.end_time_unix_nano - sp.start_time_unix_nano, 0) AS Duration,
    if(sp.status.code BETWEEN 0 AND 2, ['Unset', 'Ok', 'Error'][sp.status.code + 1], 'Unset')
        AS StatusCode,
    sp.status.message AS StatusMessage,
    arrayMap(e -> fromUnixTimestamp64Nano(toInt64(e.time_unix_nano)), sp.events)
        AS `Events.Timestamp`,
    arrayMap(e -> e.name, sp.events) AS `Events.Name`,
    arrayMap(e -> {event_attributes}, sp.events) AS `Events.Attributes`,
    arrayMap(l -> lower(hex(l.trace_id)), sp.links) AS `Links.TraceId`,
    arrayMap(l -> lower(hex(l.span_id)), sp.links) AS `Links.SpanId`,
    arrayMap(l -> l.trace_state, sp.links) AS `Links.TraceState`,
    arrayMap(l -> {link_attributes}, sp.links) AS `Links.Attributes`,
    tenant AS TenantId,
    {agent_name} AS AgentName,
    conv['gen_ai.agent.id'] AS AgentId,
    {run_id} AS RunId,
    {operation} AS Operation,
    {tool_name} AS ToolName,
    {tool_call_id} AS ToolCallId,
    if(resolved_at > 0, resolved.tool_args_hash[resolved_at], '') AS ToolArgsHash,
    {request_model} AS RequestModel,
    {response_model} AS ResponseModel,
    {provider} AS Provider,
    {input_tokens} AS InputTokens,
    {output_tokens} AS OutputTokens,
    if(conv['error.type'] != '', conv['error.type'],
       if(sp.status.code = 2,
          arrayFirst(a -> a.key = 'exception.type',
                     arrayFirst(e -> e.name = 'exception', sp.events).attributes).value.string_value,
          '')) AS ErrorType,
    toUInt8(sp.status.code = 2 OR ErrorType != '') AS IsError,
    conv['agentwatch.marker'] AS Marker,
    if(ResponseModel != '', ResponseModel, RequestModel) AS cost_model,
    Provider AS cost_provider,
    toInt64(sp.start_time_unix_nano) AS cost_at_ns,
    {cached_input_tokens} AS cost_cached_input_tokens,
    {reasoning_tokens} AS cost_reasoning_tokens,
    {reported_cost} AS cost_reported
FROM (
    SELECT
        tenant,
        resolved,
        resource_attrs,
        ss,
        sp,
        {span_attributes} AS attrs,
        mapFilter((k, v) -> k IN ({convention_keys}), attrs) AS conv,
        indexOf(resolved.span_id, sp.span_id) AS resolved_at
    FROM (
        -- Resource attributes are rendered once per resource, not once per span.
        SELECT tenant, resolved, {resource_attributes} AS resource_attrs, rs.scope_spans AS scopes
        FROM {source}
        ARRAY JOIN resource_spans AS rs
    )
    ARRAY JOIN scopes AS ss
    ARRAY JOIN ss.spans AS sp
)
))

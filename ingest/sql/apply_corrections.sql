-- Apply the corrections carried by a log segment: spans stored before their enclosing
-- span arrived get the agent and run they inherit from it. Idempotent (replays set
-- the same values). Parameters are bound; {database} is a validated identifier.
UPDATE {database}.otel_traces
SET
    AgentName = if(
        transform(SpanId, {span_ids:Array(String)}, {agent_names:Array(String)}, '') = '',
        AgentName,
        transform(SpanId, {span_ids:Array(String)}, {agent_names:Array(String)}, '')),
    RunId = if(
        transform(SpanId, {span_ids:Array(String)}, {run_ids:Array(String)}, '') = '',
        RunId,
        transform(SpanId, {span_ids:Array(String)}, {run_ids:Array(String)}, ''))
WHERE has({trace_ids:Array(String)}, TraceId) AND has({span_ids:Array(String)}, SpanId)

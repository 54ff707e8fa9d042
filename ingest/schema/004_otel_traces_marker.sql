-- agentwatch_sdk's marker spans (heartbeats, pending-span announcements) are signals,
-- not work: this column says which ones they are ('' for ordinary spans), so counts
-- and dashboards can leave them out with `Marker = ''`.
ALTER TABLE {database}.otel_traces {on_cluster}
    ADD COLUMN IF NOT EXISTS Marker LowCardinality(String) CODEC(ZSTD(1)) AFTER IsError

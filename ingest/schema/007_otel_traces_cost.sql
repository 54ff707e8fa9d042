-- What each LLM call cost in USD, fixed when the span is stored: the span's own
-- reported cost (OpenInference llm.cost.*) or the price table entry in effect at its
-- start (CostPriceId names it: "span", or "provider:pattern@date"; NULL/'' unpriced).
-- Storing it keeps queries cheap and a later price edit from rewriting history.
ALTER TABLE {database}.otel_traces {on_cluster}
    ADD COLUMN IF NOT EXISTS CostUsd Nullable(Float64) CODEC(ZSTD(1)) AFTER Marker,
    ADD COLUMN IF NOT EXISTS CostPriceId LowCardinality(String) CODEC(ZSTD(1)) AFTER CostUsd

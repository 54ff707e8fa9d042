-- Detector findings: one row per version of a finding (opened, updated, resolved).
-- ReplacingMergeTree keeps the newest version per finding id; readers use FINAL (or
-- argMax by Version) so they never see a superseded state before a merge.
CREATE TABLE IF NOT EXISTS {database}.findings {on_cluster} (
    TenantId LowCardinality(String),
    Id String,
    Kind LowCardinality(String),
    State LowCardinality(String),
    Severity LowCardinality(String),
    AgentName LowCardinality(String),
    ServiceName LowCardinality(String),
    ToolName LowCardinality(String),
    TraceId String,
    RunId String,
    OpenedAt DateTime64(3),
    UpdatedAt DateTime64(3),
    ResolvedAt Nullable(DateTime64(3)),
    Summary String,
    Evidence String CODEC(ZSTD(1)),
    Version UInt64
) ENGINE = ReplacingMergeTree(Version)
PARTITION BY toYYYYMM(OpenedAt)
ORDER BY (TenantId, Id)

-- The analysts' fact table: one row per canonical event (schemas/), latest `version` wins per event_id.
-- Partitioned by the event's month (never ingestion time: merges never cross partitions, see docs).
CREATE DATABASE IF NOT EXISTS ${database};

CREATE TABLE IF NOT EXISTS ${database}.events
(
    event_id           String,
    version            UInt64,
    mmp                LowCardinality(String),
    source             LowCardinality(String),
    app_id             LowCardinality(String),
    event_name         String,
    event_type         LowCardinality(String),
    event_time         DateTime64(3, 'UTC'),
    received_at        DateTime64(3, 'UTC'),
    user_key           String,
    customer_user_id   Nullable(String),
    platform           LowCardinality(Nullable(String)),
    os_version         Nullable(String),
    app_version        Nullable(String),
    idfa               Nullable(String),
    idfv               Nullable(String),
    gaid               Nullable(String),
    android_id         Nullable(String),
    oaid               Nullable(String),
    media_source       LowCardinality(Nullable(String)),
    campaign           Nullable(String),
    campaign_id        Nullable(String),
    ad_set             Nullable(String),
    ad_set_id          Nullable(String),
    ad                 Nullable(String),
    ad_id              Nullable(String),
    channel            LowCardinality(Nullable(String)),
    click_id           Nullable(String),
    deep_link          Nullable(String),
    is_organic         Nullable(Bool),
    touch_type         LowCardinality(Nullable(String)),
    touch_time         Nullable(DateTime64(3, 'UTC')),
    revenue            Nullable(Decimal(18, 6)),
    currency           LowCardinality(Nullable(String)),
    properties         String COMMENT 'JSON object: every MMP field not mapped to a column',
    attribution_status LowCardinality(String),
    raw_topic          LowCardinality(String),
    raw_partition      Int32,
    raw_offset         Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(event_time)
ORDER BY (app_id, event_type, toDate(event_time), event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- First/last-touch attribution (the worker's EnrichedEvent.first_touch/last_touch, flattened for analysts) and the
-- time the worker emitted this version.
ALTER TABLE ${database}.events
    ADD COLUMN IF NOT EXISTS first_touch_event_id     Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_event_type   LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS first_touch_event_time   Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS first_touch_media_source LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS first_touch_campaign     Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_campaign_id  Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_ad_set       Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_ad_set_id    Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_ad           Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_ad_id        Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_channel      LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS first_touch_click_id     Nullable(String),
    ADD COLUMN IF NOT EXISTS first_touch_touch_type   LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS first_touch_touch_time   Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS first_touch_is_organic   Nullable(Bool),
    ADD COLUMN IF NOT EXISTS last_touch_event_id      Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_event_type    LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS last_touch_event_time    Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS last_touch_media_source  LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS last_touch_campaign      Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_campaign_id   Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_ad_set        Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_ad_set_id     Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_ad            Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_ad_id         Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_channel       LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS last_touch_click_id      Nullable(String),
    ADD COLUMN IF NOT EXISTS last_touch_touch_type    LowCardinality(Nullable(String)),
    ADD COLUMN IF NOT EXISTS last_touch_touch_time    Nullable(DateTime64(3, 'UTC')),
    ADD COLUMN IF NOT EXISTS last_touch_is_organic    Nullable(Bool),
    ADD COLUMN IF NOT EXISTS emitted_at               DateTime64(3, 'UTC') DEFAULT received_at,
    ADD COLUMN IF NOT EXISTS loaded_at                DateTime64(3, 'UTC') DEFAULT now64(3);

-- Verified deliveries exactly as received, for debugging; dropped whole days after the TTL (sink.raw_ttl_days,
-- re-applied by `attrib migrate` when the setting changes).
CREATE TABLE IF NOT EXISTS ${database}.raw_deliveries
(
    delivery_id   String,
    source        LowCardinality(String),
    mmp           LowCardinality(String),
    app_id        LowCardinality(Nullable(String)),
    method        LowCardinality(String),
    path          String,
    query_string  String,
    headers       Map(String, String),
    body          String,
    remote_addr   String,
    received_at   DateTime64(3, 'UTC'),
    user_key      String,
    raw_topic     LowCardinality(String),
    raw_partition Int32,
    raw_offset    Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (source, toStartOfHour(received_at), delivery_id)
TTL toDateTime(received_at) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 1000, ttl_only_drop_parts = 1;

-- Everything the pipeline could not process, with the reason and the payload to replay after a fix.
CREATE TABLE IF NOT EXISTS ${database}.dead_letters
(
    dead_letter_id String,
    stage          LowCardinality(String),
    reason         LowCardinality(String),
    detail         String,
    field          Nullable(String),
    source         LowCardinality(Nullable(String)),
    mmp            LowCardinality(Nullable(String)),
    delivery_id    Nullable(String),
    raw_topic      LowCardinality(Nullable(String)),
    raw_partition  Nullable(Int32),
    raw_offset     Nullable(Int64),
    payload        Nullable(String),
    failed_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(failed_at)
ORDER BY (stage, reason, dead_letter_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Spike/drop alert state changes: a firing row and (later) a resolved row per alert_id.
CREATE TABLE IF NOT EXISTS ${database}.alerts
(
    alert_id     String,
    state        LowCardinality(String),
    direction    LowCardinality(String),
    severity     LowCardinality(String),
    scope        LowCardinality(String),
    app_id       LowCardinality(Nullable(String)),
    media_source LowCardinality(Nullable(String)),
    event_type   LowCardinality(Nullable(String)),
    observed     Float64,
    expected     Float64,
    bucket_start DateTime64(3, 'UTC'),
    bucket_end   DateTime64(3, 'UTC'),
    created_at   DateTime64(3, 'UTC'),
    resolved_at  Nullable(DateTime64(3, 'UTC')),
    p_value      Nullable(Float64),
    detail       String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(bucket_start)
ORDER BY (alert_id, state)
SETTINGS non_replicated_deduplication_window = 1000;

-- Daily rollups, rebuilt by the sink from `events FINAL` for every day a load touched, and swapped in atomically
-- with REPLACE PARTITION (one partition per day). A rebuild is a pure function of the deduplicated, latest-version
-- events, so retried batches, duplicate deliveries and corrections (a pending purchase later attributed) can never
-- inflate or strand counts. Attribution dimensions are the user's first touch, falling back to the event's own.
CREATE TABLE IF NOT EXISTS ${database}.daily_rollups
(
    day            Date,
    app_id         LowCardinality(String),
    media_source   LowCardinality(String) COMMENT 'first-touch media source; organic; or empty = not attributed (yet)',
    campaign       String,
    ad_set         String,
    platform       LowCardinality(String),
    installs       UInt64,
    reinstalls     UInt64,
    signups        UInt64,
    purchases      UInt64,
    revenue        Map(LowCardinality(String), Decimal(38, 6)) COMMENT 'purchase revenue by ISO-4217 currency',
    users          UInt64 COMMENT 'distinct user_key that day in this group (not additive across groups/days)',
    users_state    AggregateFunction(uniq, String) COMMENT 'uniqMerge(users_state) for distinct users over any range',
    events         UInt64,
    refreshed_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(day)
ORDER BY (app_id, day, media_source, campaign, ad_set, platform);

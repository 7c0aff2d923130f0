-- supersedes: 0003, 0004
-- 0003 declared the landing table's optional records as Nullable(Tuple(...)), a beta type ClickHouse servers refuse
-- unless enable_nullable_tuple_type=1 (chdb accepts it). These are the same tables with Tuple(Nullable(...))
-- elements instead; the sink inserts with input_format_avro_null_as_default=1, so a null record reads as a tuple of
-- NULLs and the views produce the same rows. A database that never applied 0003/0004 skips them (sinks/migrate.py:
-- `supersedes`) and gets everything from here; one that did gets the landing table and its views rebuilt.
DROP VIEW IF EXISTS ${database}.rollup_dirty_days_mv;

DROP VIEW IF EXISTS ${database}.events_avro_mv;

DROP TABLE IF EXISTS ${database}.events_avro_in;

CREATE TABLE IF NOT EXISTS ${database}.events_avro_in
(
    event_id           String,
    mmp                String,
    source             String,
    app_id             Nullable(String),
    event_name         String,
    event_type         String,
    event_time         DateTime64(3, 'UTC'),
    received_at        DateTime64(3, 'UTC'),
    user_key           String,
    customer_user_id   Nullable(String),
    platform           Nullable(String),
    os_version         Nullable(String),
    app_version        Nullable(String),
    idfa               Nullable(String),
    idfv               Nullable(String),
    gaid               Nullable(String),
    android_id         Nullable(String),
    oaid               Nullable(String),
    media_source       Nullable(String),
    campaign           Nullable(String),
    campaign_id        Nullable(String),
    ad_set             Nullable(String),
    ad_set_id          Nullable(String),
    ad                 Nullable(String),
    ad_id              Nullable(String),
    channel            Nullable(String),
    click_id           Nullable(String),
    deep_link          Nullable(String),
    is_organic         Nullable(Bool),
    touch_type         Nullable(String),
    touch_time         Nullable(DateTime64(3, 'UTC')),
    revenue            Nullable(Decimal(38, 9)),
    currency           Nullable(String),
    properties         String,
    raw                Tuple(topic Nullable(String), partition Nullable(Int32), offset Nullable(Int64)),
    first_touch        Tuple(event_id Nullable(String), event_type Nullable(String), event_time Nullable(DateTime64(3, 'UTC')), media_source Nullable(String), campaign Nullable(String), campaign_id Nullable(String), ad_set Nullable(String), ad_set_id Nullable(String), ad Nullable(String), ad_id Nullable(String), channel Nullable(String), click_id Nullable(String), touch_type Nullable(String), touch_time Nullable(DateTime64(3, 'UTC')), is_organic Nullable(Bool)),
    last_touch         Tuple(event_id Nullable(String), event_type Nullable(String), event_time Nullable(DateTime64(3, 'UTC')), media_source Nullable(String), campaign Nullable(String), campaign_id Nullable(String), ad_set Nullable(String), ad_set_id Nullable(String), ad Nullable(String), ad_id Nullable(String), channel Nullable(String), click_id Nullable(String), touch_type Nullable(String), touch_time Nullable(DateTime64(3, 'UTC')), is_organic Nullable(Bool)),
    attribution_status String,
    version            Int64,
    emitted_at         DateTime64(3, 'UTC')
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.events_avro_mv TO ${database}.events AS
SELECT
    event_id,
    toUInt64(version) AS version,
    mmp,
    source,
    ifNull(app_id, '') AS app_id,
    event_name,
    event_type,
    event_time,
    received_at,
    user_key,
    customer_user_id,
    platform,
    os_version,
    app_version,
    idfa,
    idfv,
    gaid,
    android_id,
    oaid,
    media_source,
    campaign,
    campaign_id,
    ad_set,
    ad_set_id,
    ad,
    ad_id,
    channel,
    click_id,
    deep_link,
    is_organic,
    touch_type,
    touch_time,
    CAST(revenue, 'Nullable(Decimal(18, 6))') AS revenue,
    currency,
    properties,
    attribution_status,
    ifNull(tupleElement(raw, 'topic'), '') AS raw_topic,
    ifNull(tupleElement(raw, 'partition'), -1) AS raw_partition,
    ifNull(tupleElement(raw, 'offset'), -1) AS raw_offset,
    tupleElement(first_touch, 'event_id') AS first_touch_event_id,
    tupleElement(first_touch, 'event_type') AS first_touch_event_type,
    tupleElement(first_touch, 'event_time') AS first_touch_event_time,
    tupleElement(first_touch, 'media_source') AS first_touch_media_source,
    tupleElement(first_touch, 'campaign') AS first_touch_campaign,
    tupleElement(first_touch, 'campaign_id') AS first_touch_campaign_id,
    tupleElement(first_touch, 'ad_set') AS first_touch_ad_set,
    tupleElement(first_touch, 'ad_set_id') AS first_touch_ad_set_id,
    tupleElement(first_touch, 'ad') AS first_touch_ad,
    tupleElement(first_touch, 'ad_id') AS first_touch_ad_id,
    tupleElement(first_touch, 'channel') AS first_touch_channel,
    tupleElement(first_touch, 'click_id') AS first_touch_click_id,
    tupleElement(first_touch, 'touch_type') AS first_touch_touch_type,
    tupleElement(first_touch, 'touch_time') AS first_touch_touch_time,
    tupleElement(first_touch, 'is_organic') AS first_touch_is_organic,
    tupleElement(last_touch, 'event_id') AS last_touch_event_id,
    tupleElement(last_touch, 'event_type') AS last_touch_event_type,
    tupleElement(last_touch, 'event_time') AS last_touch_event_time,
    tupleElement(last_touch, 'media_source') AS last_touch_media_source,
    tupleElement(last_touch, 'campaign') AS last_touch_campaign,
    tupleElement(last_touch, 'campaign_id') AS last_touch_campaign_id,
    tupleElement(last_touch, 'ad_set') AS last_touch_ad_set,
    tupleElement(last_touch, 'ad_set_id') AS last_touch_ad_set_id,
    tupleElement(last_touch, 'ad') AS last_touch_ad,
    tupleElement(last_touch, 'ad_id') AS last_touch_ad_id,
    tupleElement(last_touch, 'channel') AS last_touch_channel,
    tupleElement(last_touch, 'click_id') AS last_touch_click_id,
    tupleElement(last_touch, 'touch_type') AS last_touch_touch_type,
    tupleElement(last_touch, 'touch_time') AS last_touch_touch_time,
    tupleElement(last_touch, 'is_organic') AS last_touch_is_organic,
    emitted_at
FROM ${database}.events_avro_in;

CREATE TABLE IF NOT EXISTS ${database}.raw_deliveries_avro_in
(
    delivery_id      String,
    source           String,
    mmp              String,
    app_id           Nullable(String),
    method           String,
    path             String,
    query_string     String,
    headers          Map(String, String),
    body             String,
    remote_addr      String,
    received_at      DateTime64(3, 'UTC'),
    user_key         String,
    _kafka_topic     String,
    _kafka_partition Int32,
    _kafka_offset    Int64
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.raw_deliveries_avro_mv TO ${database}.raw_deliveries AS
SELECT delivery_id, source, mmp, app_id, method, path, query_string, headers, body, remote_addr, received_at, user_key,
       _kafka_topic AS raw_topic, _kafka_partition AS raw_partition, _kafka_offset AS raw_offset
FROM ${database}.raw_deliveries_avro_in;
CREATE TABLE IF NOT EXISTS ${database}.rollup_dirty_days
(
    day        Date,
    touched_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (touched_at, day)
TTL toDateTime(touched_at) + INTERVAL 30 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS ${database}.rollup_dirty_days_mv TO ${database}.rollup_dirty_days AS
SELECT DISTINCT toDate(event_time) AS day, now64(3) AS touched_at
FROM ${database}.events_avro_in;

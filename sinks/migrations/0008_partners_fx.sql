-- Canonical partners (schemas/partners.py): normalized raw value (key) → partner, loaded by the sink at start-up and
-- by `attrib partners reload`. Each load inserts the whole mapping as one block under a new generation; readers use
-- the newest generation only, so a reload is atomic and a correction re-maps history when the rollups are rebuilt.
CREATE TABLE IF NOT EXISTS ${database}.partner_map
(
    generation   UInt64,
    key          String,
    partner_id   LowCardinality(String),
    partner_name LowCardinality(String),
    raw          String COMMENT 'one raw spelling of this key, as an MMP sends it',
    source       String COMMENT 'evidence: sample | doc | convention | settings, and where',
    loaded_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (generation, key);

-- Published FX reference rates as loaded (`attrib fx load`): 1 unit of `base` = `rate` units of `currency`
-- (the ECB's convention). A re-load of a day replaces it.
CREATE TABLE IF NOT EXISTS ${database}.fx_rates
(
    day       Date,
    base      LowCardinality(String),
    currency  LowCardinality(String),
    rate      Decimal(38, 12),
    source    String,
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(loaded_at)
ORDER BY (base, currency, day);

-- Daily conversion factors derived from fx_rates for one reporting currency: revenue in `currency` on `day` times
-- `factor` = revenue in `reporting`. `rate_day` is the published day used (a weekend uses the last working day, at
-- most reporting.fx_max_age_days back). A (day, currency) without a row has no rate: such revenue is flagged and
-- counted as unconverted, never guessed. Each load writes a new generation; readers use the newest.
CREATE TABLE IF NOT EXISTS ${database}.fx_daily
(
    reporting  LowCardinality(String),
    generation UInt64,
    day        Date,
    currency   LowCardinality(String),
    factor     Decimal(38, 12),
    rate_day   Date,
    ok         UInt8 DEFAULT 1
)
ENGINE = MergeTree
ORDER BY (reporting, generation, currency, day);

ALTER TABLE ${database}.daily_rollups
    ADD COLUMN IF NOT EXISTS partner_id            LowCardinality(String) DEFAULT '' COMMENT 'canonical partner of media_source; unmapped values keep their own key',
    ADD COLUMN IF NOT EXISTS partner_name          LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS partner_mapped        UInt8 DEFAULT 1 COMMENT '0 = media_source has no row in partner_map',
    ADD COLUMN IF NOT EXISTS reporting_currency    LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS revenue_reporting     Decimal(38, 6) DEFAULT 0 COMMENT 'purchase revenue converted to reporting_currency (converted purchases only)',
    ADD COLUMN IF NOT EXISTS purchases_unconverted UInt64 DEFAULT 0 COMMENT 'purchases with revenue but no rate for their day: not in revenue_reporting';

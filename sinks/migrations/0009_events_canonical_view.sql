-- Every event with its canonical partner and its revenue in a reporting currency, beside the values as sent:
--   SELECT * FROM events_canonical(reporting = 'USD') WHERE event_time >= now() - INTERVAL 1 DAY
-- Same rules as the rollups (sinks/rollups.py; a test holds the two equal): the partner is that of the attribution
-- media source (first touch, else the event's own) from the newest partner_map generation, an unmapped value is
-- its own key (partner_mapped = 0); revenue_reporting is the amount as is in the reporting currency, else the
-- MMP's own USD figure when reporting in USD, else amount × the fx_daily factor of the event's day, else NULL with
-- revenue_converted = 0 (no rate: flagged, never guessed). revenue_converted is NULL for events without revenue.
CREATE VIEW IF NOT EXISTS ${database}.events_canonical AS
SELECT
    e.* EXCEPT (partner_key, mmp_usd, fx_day_key),
    if(attribution_media_source = '', '', if(pm_id != '', pm_id, partner_key))              AS partner_id,
    if(attribution_media_source = '', '', if(pm_id != '', pm_name, attribution_media_source)) AS partner_name,
    toUInt8(attribution_media_source = '' OR pm_id != '')                                 AS partner_mapped,
    {reporting:String}                                                                    AS reporting_currency,
    multiIf(e.revenue IS NULL OR e.currency IS NULL, NULL,
            e.currency = {reporting:String}, toNullable(toDecimal128(assumeNotNull(e.revenue), 6)),
            {reporting:String} = 'USD' AND mmp_usd IS NOT NULL, toNullable(toDecimal128(assumeNotNull(mmp_usd), 6)),
            fx_ok = 1, toNullable(toDecimal128(assumeNotNull(e.revenue) * fx_factor, 6)),
            NULL)                                                                         AS revenue_reporting,
    if(e.revenue IS NULL OR e.currency IS NULL, NULL,
       toNullable(toUInt8(e.currency = {reporting:String} OR ({reporting:String} = 'USD' AND mmp_usd IS NOT NULL)
                          OR fx_ok = 1)))                                                 AS revenue_converted
FROM (
    SELECT
        *,
        ifNull(if(first_touch_media_source IS NOT NULL, first_touch_media_source, media_source), '')
                                                                                          AS attribution_media_source,
        if(attribution_media_source = '', '',
           if(trim(BOTH '_' FROM replaceRegexpAll(lower(attribution_media_source), '[^a-z0-9]+', '_')) = '',
              concat('u_', substring(lower(hex(attribution_media_source)), 1, 16)),
              trim(BOTH '_' FROM replaceRegexpAll(lower(attribution_media_source), '[^a-z0-9]+', '_'))))
                                                                                          AS partner_key,
        multiIf(
            mmp = 'appsflyer',
            toDecimal128OrNull(trim(BOTH '"' FROM JSONExtractRaw(properties, 'event_revenue_usd')), 9),
            mmp = 'adjust', coalesce(
                toDecimal128OrNull(trim(BOTH '"' FROM JSONExtractRaw(properties, 'revenue_usd')), 9),
                toDecimal128OrNull(trim(BOTH '"' FROM JSONExtractRaw(properties, 'revenue_usd_cents')), 9) / 100),
            NULL)                                                                         AS mmp_usd,
        toDate(event_time)                                                                AS fx_day_key
    FROM ${database}.events FINAL
) AS e
LEFT JOIN (SELECT key AS pm_key, partner_id AS pm_id, partner_name AS pm_name FROM ${database}.partner_map
           WHERE generation = (SELECT max(generation) FROM ${database}.partner_map)) AS pm
    ON pm.pm_key = e.partner_key
LEFT JOIN (SELECT day AS fx_day, currency AS fx_currency, factor AS fx_factor, ok AS fx_ok FROM ${database}.fx_daily
           WHERE reporting = {reporting:String}
             AND generation = (SELECT max(generation) FROM ${database}.fx_daily WHERE reporting = {reporting:String}))
           AS fx
    ON fx.fx_day = e.fx_day_key AND fx.fx_currency = e.currency;

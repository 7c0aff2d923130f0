-- attrib analyst pack. Run all of it:    attrib sql < docs/queries.sql
-- one query:    attrib sql "$(sed -n '/name: installs_revenue/,/;$/p' docs/queries.sql)"
-- or paste into clickhouse-client. Unqualified tables live in the `attribution` database.
--
-- Conventions
--   * `events FINAL` = one row per event_id at its latest version (corrections replace pending rows; duplicates
--     are collapsed). Always read `events` with FINAL (or through daily_rollups).
--   * Attribution = the user's first touch (install attribution) when there is one, else the event's own fields.
--     media_source 'organic' = organic; '' = not attributed (yet): pending or unattributed.
--   * Partners: partner_id / partner_name are the canonical partner (schemas/partners.csv + reporting.partners) of
--     the attribution media source, which stays beside them as sent. A value the mapping lacks is its own partner
--     (its normalized key, partner_mapped = 0) until `unmapped_partners` shows it and a mapping row is added.
--   * Revenue: `revenue` is per ISO-4217 currency as sent (a Map: never sum across currencies) -
--     `revenue_reporting` is the same purchases converted to `reporting_currency` (setting reporting.currency) with
--     the rate of the event's day (`attrib fx load`). Purchases without a rate are NOT in it: they are counted in
--     `purchases_unconverted` and listed by `unconverted_revenue`.
--   * Per event, with partner and converted revenue beside the values as sent:
--     SELECT * FROM events_canonical(reporting = 'USD')   (a parameterized view over events FINAL)
--   * Times are UTC. Windows are relative to the newest data, so the pack also works on replayed history.

-- name: installs_revenue_by_campaign_day
-- Installs, purchases and revenue by day, media source and campaign (last 30 days of data), from the rollups.
SELECT
    day,
    media_source,
    campaign,
    sum(installs)   AS installs,
    sum(reinstalls) AS reinstalls,
    sum(purchases)  AS purchases,
    sumMap(revenue) AS revenue_by_currency,
    any(partner_name)              AS partner_name,
    sum(revenue_reporting)         AS revenue_reporting,
    any(reporting_currency)        AS reporting_currency,
    sum(purchases_unconverted)     AS purchases_unconverted
FROM daily_rollups
WHERE day >= (SELECT max(day) FROM daily_rollups) - 30
GROUP BY day, media_source, campaign
ORDER BY day, media_source, campaign;

-- name: installs_revenue_by_partner_day
-- Installs, purchases and revenue in the reporting currency by day and canonical partner (last 30 days of data).
SELECT
    day,
    partner_id,
    any(partner_name)           AS partner_name,
    sum(installs)               AS installs,
    sum(reinstalls)             AS reinstalls,
    sum(purchases)              AS purchases,
    sum(revenue_reporting)      AS revenue,
    any(reporting_currency)     AS currency,
    sum(purchases_unconverted)  AS purchases_unconverted
FROM daily_rollups
WHERE day >= (SELECT max(day) FROM daily_rollups) - 30
GROUP BY day, partner_id
ORDER BY day, partner_id;

-- name: unmapped_partners
-- Media source values no mapping row covers: add them to schemas/partners.csv (or reporting.partners), then
-- `attrib partners reload` re-maps their history.
SELECT
    partner_id                    AS partner_key,
    groupUniqArray(media_source)  AS raw_values,
    sum(events)                   AS events,
    sum(installs) + sum(reinstalls) AS installs,
    min(day)                      AS first_day,
    max(day)                      AS last_day
FROM daily_rollups
WHERE partner_mapped = 0
GROUP BY partner_key
ORDER BY events DESC, partner_key;

-- name: unconverted_revenue
-- Purchases whose revenue could not be converted to the reporting currency (no rate for their day and currency):
-- left out of revenue_reporting, never guessed. Load the missing rates with `attrib fx load`.
WITH (SELECT any(reporting_currency) FROM daily_rollups WHERE reporting_currency != '') AS rep
SELECT
    toDate(event_time)  AS day,
    cur                 AS currency,
    count()             AS purchases,
    sum(amount)         AS amount
FROM (
    SELECT event_time, assumeNotNull(currency) AS cur, assumeNotNull(revenue) AS amount,
           -- the MMP's own USD figure (used when reporting in USD), as sinks/rollups.py reads it
           multiIf(mmp = 'appsflyer', [JSONExtractRaw(properties, 'event_revenue_usd')],
                   mmp = 'adjust', [JSONExtractRaw(properties, 'revenue_usd'),
                                    JSONExtractRaw(properties, 'revenue_usd_cents')], [])         AS usd_raw,
           arrayExists(v -> toDecimal128OrNull(trim(BOTH '"' FROM v), 9) IS NOT NULL, usd_raw)      AS has_mmp_usd
    FROM events FINAL
    WHERE event_type = 'purchase' AND revenue IS NOT NULL AND currency IS NOT NULL
) AS e
LEFT JOIN (
    SELECT day AS fx_day, currency AS fx_currency, ok AS fx_ok
    FROM fx_daily
    WHERE reporting = rep AND generation = (SELECT max(generation) FROM fx_daily WHERE reporting = rep)
) AS fx ON fx.fx_day = toDate(e.event_time) AND fx.fx_currency = e.cur
WHERE cur != rep AND fx_ok = 0 AND NOT (rep = 'USD' AND has_mmp_usd)
GROUP BY day, currency
ORDER BY day, currency;

-- name: roas_inputs_by_campaign_cohort
-- ROAS inputs: for each install cohort (campaign × install day) the installs and the revenue those users made by
-- D0/D1/D7/D30 (calendar days after the install day, cumulative). Divide by spend from the ad network for ROAS.
WITH
    cohorts AS (
        SELECT
            ifNull(if(first_touch_media_source IS NOT NULL, first_touch_media_source, media_source), '') AS media_source,
            ifNull(if(first_touch_media_source IS NOT NULL, first_touch_campaign, campaign), '')         AS campaign,
            toDate(event_time)                                   AS cohort_day,
            count()                                              AS installs
        FROM events FINAL
        WHERE event_type IN ('install', 'reinstall')
        GROUP BY media_source, campaign, cohort_day
    ),
    revenue AS (
        SELECT
            first_touch_media_source                                            AS media_source,
            coalesce(first_touch_campaign, '')                                  AS campaign,
            toDate(first_touch_event_time)                                      AS cohort_day,
            assumeNotNull(currency)                                             AS currency,
            sumIf(assumeNotNull(revenue), toDate(event_time) - toDate(first_touch_event_time) <= 0)  AS revenue_d0,
            sumIf(assumeNotNull(revenue), toDate(event_time) - toDate(first_touch_event_time) <= 1)  AS revenue_d1,
            sumIf(assumeNotNull(revenue), toDate(event_time) - toDate(first_touch_event_time) <= 7)  AS revenue_d7,
            sumIf(assumeNotNull(revenue), toDate(event_time) - toDate(first_touch_event_time) <= 30) AS revenue_d30,
            sum(assumeNotNull(revenue))                                         AS revenue_total
        FROM events FINAL
        WHERE event_type = 'purchase' AND revenue IS NOT NULL AND currency IS NOT NULL
          AND first_touch_event_time IS NOT NULL
        GROUP BY media_source, campaign, cohort_day, currency
    )
SELECT c.media_source, c.campaign, c.cohort_day, c.installs,
       r.currency, r.revenue_d0, r.revenue_d1, r.revenue_d7, r.revenue_d30, r.revenue_total
FROM cohorts AS c
LEFT JOIN revenue AS r USING (media_source, campaign, cohort_day)
WHERE c.media_source NOT IN ('', 'organic')
ORDER BY c.cohort_day, c.media_source, c.campaign, r.currency;

-- name: install_to_first_purchase_quantiles
-- How long from install to the first purchase, by media source: median, p90, p99 in seconds (purchasers only).
SELECT
    media_source,
    count()                                 AS purchasers,
    quantileExact(0.5)(seconds_to_purchase)  AS p50_s,
    quantileExact(0.9)(seconds_to_purchase)  AS p90_s,
    quantileExact(0.99)(seconds_to_purchase) AS p99_s
FROM
(
    SELECT
        app_id,
        user_key,
        argMinIf(coalesce(first_touch_media_source, media_source, ''), event_time,
                 event_type IN ('install', 'reinstall'))                   AS media_source,
        minIf(event_time, event_type IN ('install', 'reinstall'))          AS installed_at,
        countIf(event_type IN ('install', 'reinstall'))                    AS installs,
        arrayFilter(t -> t >= installed_at, groupArrayIf(event_time, event_type = 'purchase')) AS purchases_after,
        arrayMin(purchases_after)                                          AS first_purchase_at,
        dateDiff('second', installed_at, first_purchase_at)                AS seconds_to_purchase
    FROM events FINAL
    GROUP BY app_id, user_key
    HAVING installs > 0 AND notEmpty(purchases_after)
)
GROUP BY media_source
ORDER BY media_source;

-- name: purchase_conversion_d1_d7_by_source
-- Share of installers who purchased within 24 h (D1) and within 7 × 24 h (D7) of their install, by media source.
-- Recent cohorts have not had 7 days yet: compare cohorts of the same age.
SELECT
    media_source,
    count()                                                       AS installers,
    countIf(purchased AND first_purchase_at < installed_at + INTERVAL 1 DAY) AS d1_purchasers,
    countIf(purchased AND first_purchase_at < installed_at + INTERVAL 7 DAY) AS d7_purchasers,
    round(d1_purchasers / installers, 4)                          AS d1_conversion,
    round(d7_purchasers / installers, 4)                          AS d7_conversion
FROM
(
    SELECT
        app_id,
        user_key,
        argMinIf(coalesce(first_touch_media_source, media_source, ''), event_time,
                 event_type IN ('install', 'reinstall'))                   AS media_source,
        minIf(event_time, event_type IN ('install', 'reinstall'))          AS installed_at,
        countIf(event_type IN ('install', 'reinstall'))                    AS installs,
        arrayFilter(t -> t >= installed_at, groupArrayIf(event_time, event_type = 'purchase')) AS purchases_after,
        notEmpty(purchases_after)                                          AS purchased,
        arrayMin(purchases_after)                                          AS first_purchase_at
    FROM events FINAL
    GROUP BY app_id, user_key
    HAVING installs > 0
)
GROUP BY media_source
ORDER BY media_source;

-- name: organic_vs_paid
-- Installs, purchases and revenue per day and app, split organic / paid / not attributed (yet).
SELECT
    day,
    app_id,
    multiIf(media_source = 'organic', 'organic', media_source = '', 'unattributed', 'paid') AS kind,
    sum(installs) + sum(reinstalls) AS installs,
    sum(purchases)                  AS purchases,
    sumMap(revenue)                 AS revenue_by_currency,
    sum(revenue_reporting)          AS revenue_reporting,
    sum(purchases_unconverted)      AS purchases_unconverted
FROM daily_rollups
GROUP BY day, app_id, kind
ORDER BY day, app_id, kind;

-- name: pending_and_unattributed_share
-- How much of the data is still waiting for attribution (pending) or never got one (unattributed), per app.
SELECT
    app_id,
    count()                                               AS events,
    countIf(startsWith(attribution_status, 'pending'))   AS pending,
    countIf(attribution_status = 'unattributed')          AS unattributed,
    round(pending / events, 4)                            AS pending_share,
    round(unattributed / events, 4)                       AS unattributed_share
FROM events FINAL
GROUP BY app_id
ORDER BY app_id;

-- name: latest_alerts
-- The 20 most recent spike/drop incidents and where each stands now (a resolved row wins over its firing row).
SELECT
    alert_id,
    argMax(state, (created_at, state = 'resolved')) AS state,
    any(direction)                                  AS direction,
    any(severity)                                   AS severity,
    any(scope)                                      AS scope,
    any(app_id)                                     AS app_id,
    any(media_source)                               AS media_source,
    any(event_type)                                 AS event_type,
    argMin(observed, created_at)                    AS observed,
    argMin(expected, created_at)                    AS expected,
    min(bucket_start)                               AS bucket_start,
    min(created_at)                                 AS fired_at,
    max(resolved_at)                                AS resolved_at
FROM alerts FINAL
GROUP BY alert_id
ORDER BY fired_at DESC
LIMIT 20;

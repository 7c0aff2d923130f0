-- Which days a load touched, recorded by the engine itself as rows arrive (the fast path's view below; the row
-- path inserts here directly). The rollup refresher rebuilds these days; a crashed sink leaves them here, so
-- nothing is forgotten across restarts, and the sink never has to parse event times in Python.
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

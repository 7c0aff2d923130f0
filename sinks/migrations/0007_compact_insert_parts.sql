-- Freshly inserted parts in the Compact format (all columns in one file) until a merge makes them ≥ 1M rows: a
-- sink batch of up to ~100k rows of the ~75-column `events` then writes one file instead of ~300, which made the
-- engine's insert ~1.5x cheaper per row (bench/sink.py, README). Merged parts analysts mostly read stay Wide.
-- A part is Compact when it is below EITHER threshold, so the row bound applies whatever the row width.
ALTER TABLE ${database}.events MODIFY SETTING min_rows_for_wide_part = 1000000;

ALTER TABLE ${database}.raw_deliveries MODIFY SETTING min_rows_for_wide_part = 1000000;

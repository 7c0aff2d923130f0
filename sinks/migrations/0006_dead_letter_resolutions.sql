-- Dead letters that a later `attrib replay --dead-letters` re-ran successfully. The open set is
--   SELECT … FROM dead_letters FINAL WHERE dead_letter_id NOT IN (SELECT dead_letter_id FROM dead_letter_resolutions)
-- (dead_letters itself stays an append-only record of what failed and why).
CREATE TABLE IF NOT EXISTS ${database}.dead_letter_resolutions
(
    dead_letter_id String,
    resolved_at    DateTime64(3, 'UTC'),
    resolution     LowCardinality(String),
    detail         String
)
ENGINE = ReplacingMergeTree
ORDER BY dead_letter_id;

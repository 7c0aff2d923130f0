"""Sinks: where enriched events leave the pipeline (ClickHouse, later Slack and outbound routes)."""

"""attrib: attribution webhooks from MMPs -> Kafka -> Faust -> ClickHouse.

Shared plumbing lives here (settings, logging, the local stack, the CLI); the pipeline itself reads
ingest/ -> streams/ -> sinks/, with schemas/ shared by all three.
"""

"""Shared schemas: Avro (.avsc) records and the canonical attributed event."""

"""Stream processing (Faust): normalize, dedupe, buffer, enrich, emit."""

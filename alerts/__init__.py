"""Spike/drop alerts: counting enriched events, the pure detector, and delivery to Slack
(`attrib alerts`, `attrib notify`)."""

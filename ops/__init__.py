"""Operator tools, on top of every stage: the CLI, `attrib run`, the local stack, replay, the inspector, `attrib sql`
and the traffic generator. Nothing below this package imports it."""

"""The project's one error tree. Every error we raise derives from :class:`AttribError`; a foreign library's errors are
mapped to one of these at the seam where we call it (see ``sinks/clickhouse.py``, ``attrib/kafka.py``, the Slack and
HTTP senders), so callers decide on *our* categories, never on another library's classes.

The two questions a caller asks of a failure are answered by the class:
- :class:`Retryable` — the world is temporarily unavailable (broker, warehouse, vendor down, timeout): keep the input
  and try again later; nothing is dead-lettered.
- :class:`Permanent` — this input will never succeed as it is (bad bytes, a row the warehouse refuses): dead-letter it
  with the reason and move on.
"""

from __future__ import annotations


class AttribError(Exception):
    """Root of every error this project raises."""


class ConfigurationError(AttribError):
    """Settings are invalid or incomplete; raised at start-up and names the key as the user wrote it."""


class Retryable(AttribError):
    """A dependency is unavailable for now; the same input may succeed later."""


class Permanent(AttribError):
    """This input cannot succeed as it is; dead-letter it."""


class InputError(Permanent):
    """Bad input from outside (a delivery, a payload, a CLI argument)."""


class DependencyUnavailable(Retryable):
    """A dependency (Kafka, ClickHouse, Slack, a destination) did not answer or answered 'try later'."""

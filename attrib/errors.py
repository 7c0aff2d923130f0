"""The project's one error tree. Every error we raise derives from :class:`AttribError`; a foreign library's errors are
mapped to one of these at the seam where we call it (``sinks/clickhouse.py`` for ClickHouse, ``attrib/kafka.py``
for Kafka, ``attrib/http_errors.py`` for HTTP, ``attrib/settings.py`` for pydantic, ``schemas/avro.py`` for fastavro),
so callers decide on *our* categories, never on another library's classes.

The two questions a caller asks of a failure are answered by the class:
- :class:`Retryable` — the world is temporarily unavailable (broker, warehouse, vendor down, timeout): keep the input
  and try again later; nothing is dead-lettered.
- :class:`Permanent` — this input will never succeed as it is (bad bytes, a row the warehouse refuses): dead-letter it
  with the reason and move on.

Each seam declares the foreign classes it maps in a module-level ``FOREIGN_ERRORS`` table (foreign class → the
categories it can become); ``tests/attrib/test_error_mapping.py`` fails when production code catches a third-party
exception class that no such table lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias


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


# A seam's table: foreign exception class → the categories an instance of it can become (a seam may decide per
# instance, e.g. ClickHouse by the server's error code: outage or poison).
ForeignErrors: TypeAlias = Mapping[type[BaseException], tuple[type[AttribError], ...]]

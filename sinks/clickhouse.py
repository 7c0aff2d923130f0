"""The ClickHouse connection: a server when settings name a URL, else the embedded engine (chdb) under var/.

Always clickhouse-connect, so every query and insert path is the same code for both targets. chdb allows one
process per directory: the process that calls :func:`connect` in embedded mode owns the warehouse until it exits.

This is also the ClickHouse *seam*: :func:`mapped` turns clickhouse-connect's exceptions into ours, by the server's
error code where there is one — :class:`ClickHouseRejected` (``Permanent``: this data can never load as it is; the
sink dead-letters it) or :class:`ClickHouseUnavailable` (``DependencyUnavailable``: keep the data, retry). Anything
not known to be the data's fault counts as unavailable, so an unknown error stalls loudly instead of losing rows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError

from attrib.errors import DependencyUnavailable, ForeignErrors, Permanent
from attrib.settings import Settings

log = logging.getLogger("attrib.clickhouse")

# Client-side batching everywhere: async inserts (on by default in recent engines) would add latency and hide errors.
CLIENT_SETTINGS = {"async_insert": 0}

# Server error codes (ClickHouse src/Common/ErrorCodes.cpp; checked with errorCodeToName() on the bundled engine) that
# say "this data cannot be parsed or stored as it is": retrying the same rows cannot help.
POISON_CODES: dict[int, str] = {
    3: "UNEXPECTED_END_OF_FILE", 6: "CANNOT_PARSE_TEXT", 7: "INCORRECT_NUMBER_OF_COLUMNS",
    25: "CANNOT_PARSE_ESCAPE_SEQUENCE", 26: "CANNOT_PARSE_QUOTED_STRING", 27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    32: "ATTEMPT_TO_READ_AFTER_EOF", 33: "CANNOT_READ_ALL_DATA", 38: "CANNOT_PARSE_DATE", 41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH", 69: "ARGUMENT_OUT_OF_BOUND", 70: "CANNOT_CONVERT_TYPE", 72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA", 128: "TOO_LARGE_ARRAY_SIZE", 130: "CANNOT_READ_ARRAY_FROM_TEXT",
    131: "TOO_LARGE_STRING_SIZE", 190: "SIZES_OF_ARRAYS_DONT_MATCH", 321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN", 376: "CANNOT_PARSE_UUID", 407: "DECIMAL_OVERFLOW",
    441: "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", 467: "CANNOT_PARSE_BOOL", 469: "VIOLATED_CONSTRAINT",
    675: "CANNOT_PARSE_IPV4", 676: "CANNOT_PARSE_IPV6", 691: "UNKNOWN_ELEMENT_OF_ENUM",
}
# Codes that say "the warehouse cannot take it right now" (for the log and the docs; every code that is not poison is
# treated the same way, so this list only needs to be illustrative, not complete).
OUTAGE_CODES: dict[int, str] = {
    60: "UNKNOWN_TABLE", 81: "UNKNOWN_DATABASE", 159: "TIMEOUT_EXCEEDED", 160: "TOO_SLOW",
    173: "CANNOT_ALLOCATE_MEMORY", 202: "TOO_MANY_SIMULTANEOUS_QUERIES", 209: "SOCKET_TIMEOUT", 210: "NETWORK_ERROR",
    218: "TABLE_IS_DROPPED", 225: "NO_ZOOKEEPER", 241: "MEMORY_LIMIT_EXCEEDED", 242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE", 252: "TOO_MANY_PARTS", 279: "ALL_CONNECTION_TRIES_FAILED", 285: "TOO_FEW_LIVE_REPLICAS",
    394: "QUERY_WAS_CANCELLED", 439: "CANNOT_SCHEDULE_TASK", 497: "ACCESS_DENIED", 516: "AUTHENTICATION_FAILED",
    574: "DISTRIBUTED_TOO_MANY_PENDING_BYTES", 745: "SERVER_OVERLOADED", 999: "KEEPER_EXCEPTION",
}
STD_EXCEPTION = 1001  # the engine's wrapper for a C++ library's exception; poison when that library is its Avro reader
# clickhouse-connect serializes rows in Python: a value of the wrong type or range fails there, before any I/O
CONVERSION_ERRORS: tuple[type[Exception], ...] = (TypeError, ValueError, OverflowError, AttributeError, DataError)


class ClickHouseUnavailable(DependencyUnavailable):
    """The warehouse did not take the request (down, overloaded, misconfigured, or an error not known to be the
    data's fault): keep the data and retry."""

    def __init__(self, message: str, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code, self.name = code, name


class ClickHouseRejected(Permanent):
    """The warehouse (or the client, converting a value) refused this data; the same rows will never load."""

    def __init__(self, message: str, code: int | None = None, name: str | None = None) -> None:
        super().__init__(message)
        self.code, self.name = code, name


# The seam's table (see attrib/errors.py): OSError covers connections refused/reset below clickhouse-connect and
# chdb's temporary files; conversion errors are mapped by :func:`insert` only, where the client converts values.
FOREIGN_ERRORS: ForeignErrors = {
    ClickHouseError: (ClickHouseRejected, ClickHouseUnavailable),
    OSError: (ClickHouseUnavailable,),
}
CAUGHT: tuple[type[BaseException], ...] = tuple(FOREIGN_ERRORS)


def mapped(exc: BaseException) -> ClickHouseRejected | ClickHouseUnavailable:
    """Our error for a ClickHouse failure (see the module doc). ``exc`` is a clickhouse-connect exception, an
    OSError, or (from :func:`insert`) a client-side conversion error."""
    code: int | None = getattr(exc, "code", None) if isinstance(exc, ClickHouseError) else None
    name: str | None = getattr(exc, "name", None) if isinstance(exc, ClickHouseError) else None
    name = name or POISON_CODES.get(code or 0) or OUTAGE_CODES.get(code or 0)
    text = " ".join(str(exc).split())[:500] or type(exc).__name__
    if code in POISON_CODES or (code == STD_EXCEPTION and "avro::Exception" in text):
        return ClickHouseRejected(text, code, name)
    if code is None and isinstance(exc, CONVERSION_ERRORS):
        return ClickHouseRejected(f"client could not convert a value: {text}", None, None)
    return ClickHouseUnavailable(text, code, name)


@contextlib.contextmanager
def calls() -> Iterator[None]:
    """Run ClickHouse calls; their failures leave as :class:`ClickHouseRejected` / :class:`ClickHouseUnavailable`."""
    try:
        yield
    except CAUGHT as exc:
        raise mapped(exc) from exc


def insert(client: Client, table: str, data: Any, **kwargs: Any) -> None:
    """``client.insert`` through the seam, where a value the client cannot convert is the data's fault too."""
    try:
        client.insert(table, data, **kwargs)
    except (*CAUGHT, *CONVERSION_ERRORS) as exc:
        raise mapped(exc) from exc


def close(client: Client) -> None:
    """Close a client that may be broken already (after an outage): a failure to close changes nothing."""
    try:
        client.close()
    except CAUGHT as exc:
        log.debug("closing a clickhouse client failed", extra={"fields": {"error": str(exc)[:200]}})


def connect(settings: Settings, database: str | None = None, url: str | None = None) -> Client:
    """A client for the configured target (or ``url``); ``database`` makes unqualified table names resolve there.
    Raises :class:`ClickHouseUnavailable` when the target does not answer (or another process holds the engine)."""
    ch = settings.clickhouse
    db: dict[str, Any] = {"database": database} if database else {}
    with calls():
        if ch.embedded and url is None:
            path = settings.clickhouse_path
            path.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(interface="chdb", path=str(path.resolve()),
                                                 settings=CLIENT_SETTINGS, **db)
        u = urlparse(url or ch.url or "")  # not embedded: settings hold a URL
        return clickhouse_connect.get_client(
            interface=u.scheme, host=u.hostname, port=u.port or (8443 if u.scheme == "https" else 8123),
            username=u.username or ch.username, password=u.password or ch.password.get_secret_value(),
            settings=CLIENT_SETTINGS, **db,
        )


def describe(settings: Settings) -> str:
    ch = settings.clickhouse
    return f"embedded chdb at {settings.clickhouse_path}" if ch.embedded else f"server {ch.url}"

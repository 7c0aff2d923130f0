"""The ClickHouse connection: a server when settings name a URL, else the embedded engine (chdb) under var/.

Always clickhouse-connect, so every query and insert path is the same code for both targets. chdb allows one
process per directory: the process that calls :func:`connect` in embedded mode owns the warehouse until it exits.
"""

from __future__ import annotations

from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from attrib.settings import Settings

# Client-side batching everywhere: async inserts (on by default in recent engines) would add latency and hide errors.
CLIENT_SETTINGS = {"async_insert": 0}


def connect(settings: Settings, database: str | None = None, url: str | None = None) -> Client:
    """A client for the configured target (or ``url``); ``database`` makes unqualified table names resolve there."""
    ch = settings.clickhouse
    db = {"database": database} if database else {}
    if ch.embedded and url is None:
        path = settings.clickhouse_path
        path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(path.resolve()), settings=CLIENT_SETTINGS,
                                             **db)
    u = urlparse(url or ch.url)
    return clickhouse_connect.get_client(
        interface=u.scheme, host=u.hostname, port=u.port or (8443 if u.scheme == "https" else 8123),
        username=u.username or ch.username, password=u.password or ch.password.get_secret_value(),
        settings=CLIENT_SETTINGS, **db,
    )


def describe(settings: Settings) -> str:
    ch = settings.clickhouse
    return f"embedded chdb at {settings.clickhouse_path}" if ch.embedded else f"server {ch.url}"

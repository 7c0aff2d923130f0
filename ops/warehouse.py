"""Opening the warehouse for writing from an operator command (`attrib fx load`, `attrib partners reload`)."""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from attrib.errors import DependencyUnavailable
from attrib.settings import Settings


def open_for_writes(settings: Settings) -> Client:
    """A client on the configured warehouse. The embedded engine allows one process per directory: while a sink
    runs it owns the files (its SQL port is read-only), so say that instead of the engine's own message."""
    from sinks.clickhouse import ClickHouseUnavailable, connect, describe

    try:
        return connect(settings)
    except ClickHouseUnavailable as exc:  # the seam's one class for "cannot open it", server or engine
        hint = (" — with the embedded engine, stop the running sink first (it owns the files), or set "
                "clickhouse.url" if settings.clickhouse.embedded else "")
        raise DependencyUnavailable(f"cannot open the warehouse ({describe(settings)}){hint}: "
                                    f"{str(exc).strip()[:200]}") from None

"""Opening the warehouse for writing from an operator command (`attrib fx load`, `attrib partners reload`, `migrate`,
`replay`), and who holds the embedded engine when it cannot be opened."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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
        if settings.clickhouse.embedded and (who := holder(settings)):
            raise DependencyUnavailable(
                f"the embedded warehouse {settings.clickhouse_path} is held by {who}: chdb allows one process per "
                f"directory. Stop it first (Ctrl-C in `attrib run`, or `kill` that pid), or point clickhouse.url at "
                f"a ClickHouse server; read-only SQL meanwhile: `attrib sql`") from None
        hint = (" — with the embedded engine, stop the running sink first (it owns the files), or set "
                "clickhouse.url" if settings.clickhouse.embedded else "")
        raise DependencyUnavailable(f"cannot open the warehouse ({describe(settings)}){hint}: "
                                    f"{str(exc).strip()[:200]}") from None


def sink_health(settings: Settings) -> dict[str, Any] | None:
    """The running sink's /health on its loopback query port (None when nothing answers there)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.sink.query_port}/health", timeout=2) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as exc:  # 503: the sink runs, its warehouse is not answering
        try:
            return dict(json.loads(exc.read()))
        except ValueError:
            return {"status": f"http {exc.code}"}
    except (OSError, ValueError):
        return None


def holder(settings: Settings) -> str | None:
    """Which live process holds the embedded engine's directory: ClickHouse writes its pid into ``status``."""
    try:
        status = (settings.clickhouse_path / "status").read_text()
        pid = int(next(line.split(":", 1)[1] for line in status.splitlines() if line.startswith("PID:")))
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, StopIteration):
        return None
    args = [a.decode(errors="replace") for a in cmd if a]
    if "ops.cli" in args:  # `python -m ops.cli sink` → "attrib sink"
        args = ["attrib", *args[args.index("ops.cli") + 1:]]
    shown = " ".join(" ".join(args).split())[:80]
    return f"pid {pid} ({shown})"

"""Helpers for tests and benchmarks (production never imports this module): throwaway brokers, free ports, /proc
readings."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from attrib.settings import Settings
from ops.stack import Broker, fetch_jars


def free_port() -> int:
    """A loopback port free right now (for child services, tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def given_or_throwaway(bootstrap: str | None, home: Path) -> tuple[Broker | None, str]:
    """The benchmarks' ``--bootstrap``: that broker if given, else a throwaway one under ``home`` (the caller stops
    the returned Broker; None when it was given)."""
    if bootstrap:
        return None, bootstrap
    broker = throwaway_broker(home)
    return broker, broker.bootstrap


def throwaway_broker(home: Path) -> Broker:
    """A started broker on free ports with its files under ``home``, for tests and benchmarks (``stop()`` it after)."""
    s = Settings(var_dir=home, kafka={"bootstrap_servers": f"127.0.0.1:{free_port()}"},
                 stack={"controller_port": free_port()})
    fetch_jars(s)
    broker = Broker.from_settings(s)
    broker.start(log=lambda *_: None)
    return broker

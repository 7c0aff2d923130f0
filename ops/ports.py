"""Who listens on a TCP port, from /proc (Linux): so `attrib run` can refuse a port another process already serves,
and trust a readiness answer only when it comes from the child it started."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

PROC = Path("/proc")


def _listen_inodes(port: int) -> set[str]:
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rpartition(":")[2], 16) == port:  # 0A = LISTEN
                found.add(f[9])
    return found


def _sockets(pid: int) -> set[str]:
    out = set()
    try:
        for fd in (PROC / str(pid) / "fd").iterdir():
            try:
                link = fd.readlink().name
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(link[8:-1])
    except OSError:
        pass
    return out


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it (a service may listen from a worker child: `ingest --workers N`)."""
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        for task in (PROC / str(p) / "task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split() if int(c) not in out]
            except OSError:
                continue
    return out


def listening_pids(port: int) -> set[int]:
    """Processes with a listening socket on ``port`` (those we may inspect)."""
    inodes = _listen_inodes(port)
    if not inodes:
        return set()
    return {int(d.name) for d in PROC.iterdir() if d.name.isdigit() and _sockets(int(d.name)) & inodes}


def served_by(pid: int, port: int) -> bool:
    """True when the listening socket on ``port`` belongs to ``pid`` or one of its descendants."""
    inodes = _listen_inodes(port)
    return bool(inodes) and any(_sockets(p) & inodes for p in descendants(pid))


def in_use(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound now, else who holds it ("pid 123 (python3 -m http.server)" or "another
    process")."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
            return None
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return None  # e.g. an address not on this host: the service will say so itself
    names = []
    for pid in sorted(listening_pids(port)):
        try:
            cmd = " ".join(a.decode(errors="replace") for a in (PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
                           if a)
        except OSError:
            cmd = "?"
        names.append(f"pid {pid} ({' '.join(cmd.split())[:60]})")
    return ", ".join(names) or "another process"

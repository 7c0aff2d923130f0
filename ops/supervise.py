"""Run the pipeline's services as child processes for `attrib run`: start, wait until ready, restart the ones that
exit (with backoff, as compose's `restart: unless-stopped`), stop in reverse order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from attrib.errors import DependencyUnavailable

if TYPE_CHECKING:
    from attrib.settings import Settings


class ServiceError(DependencyUnavailable, RuntimeError):
    """A child service died or never became ready; the message points at its log."""


@dataclass
class Service:
    name: str
    argv: Sequence[str]
    ready_url: str | None = None  # polled until it answers 2xx
    env: Mapping[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = log_dir / f"{self.name}.log"
        out = self.log.open("ab")
        # own process group: Ctrl-C in the terminal reaches us only, and we stop children in order
        self.proc = subprocess.Popen(list(self.argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **self.env}, start_new_session=True)
        out.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                raise ServiceError(f"{self.name} exited with {self.proc.returncode if self.proc else '?'}; "
                                   f"see {self.log}:\n{tail(self.log)}")
            if self.ready_url is None or (_answers(self.ready_url) and self._answered_by_us()):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} not ready after {timeout_s:.0f} s at {self.ready_url}; see {self.log}")
            time.sleep(0.2)

    def _answered_by_us(self) -> bool:
        """Whoever answered must be this child (or its worker processes): another server on a port we meant to take
        must not pass for our service (the child then dies on 'address already in use' and we say so)."""
        from urllib.parse import urlparse

        from ops.ports import served_by

        port = urlparse(self.ready_url).port if self.ready_url else None
        return port is None or self.proc is None or served_by(self.proc.pid, port)

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)  # graceful: ingress drains, worker/sink commit
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Backoff:
    """Restart delays like Docker's restart policy: doubling from ``first_s`` up to ``max_s``, back to ``first_s``
    once the service had stayed up ``reset_after_s``."""

    first_s: float = 1.0
    max_s: float = 30.0
    reset_after_s: float = 10.0

    def next(self, previous: float | None, up_for_s: float) -> float:
        if previous is None or up_for_s >= self.reset_after_s:
            return self.first_s
        return min(self.max_s, previous * 2)


def exit_reason(code: int | None) -> str:
    """'code 70', or 'code -9, SIGKILL' for a signal."""
    if code is not None and code < 0:
        try:
            return f"code {code}, {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"code {code}"


class Supervisor:
    """Restarts any service that exits while it runs (a crash, an OOM kill, the worker's exit 70 when it skipped
    offsets: the restart re-reads from the last commit), saying so on ``say``. Stop it before stopping the services."""

    def __init__(self, services: Sequence[Service], log_dir: Path, say: Callable[[str], None] = print,
                 backoff: Backoff | None = None, poll_s: float = 0.25) -> None:
        self.services, self.log_dir, self.say = list(services), log_dir, say
        self.backoff, self.poll_s = backoff or Backoff(), poll_s
        self.restarts: dict[str, int] = {}
        now = time.monotonic()
        self._started = {svc.name: now for svc in self.services}
        self._delay: dict[str, float] = {}
        self._due: dict[str, float] = {}  # name -> when its planned restart is due (monotonic)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="attrib-supervisor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()

    def check(self, now: float) -> None:
        """One pass: plan a restart for each newly exited service, start the ones whose delay is over."""
        for svc in self.services:
            due = self._due.get(svc.name)
            if due is not None:
                if now >= due:
                    del self._due[svc.name]
                    self._started[svc.name] = now
                    try:
                        svc.start(self.log_dir)
                    except OSError as exc:  # e.g. out of file descriptors: retry after the next delay
                        self.say(f"{svc.name} could not be restarted: {exc}")
                        continue
                    self.restarts[svc.name] = self.restarts.get(svc.name, 0) + 1
                continue
            if svc.proc is None or svc.alive():
                continue
            delay = self.backoff.next(self._delay.get(svc.name), now - self._started[svc.name])
            self._delay[svc.name] = delay
            self._due[svc.name] = now + delay
            self.say(f"{svc.name} exited ({exit_reason(svc.proc.returncode)}); restarting in {delay:g}s")

    def _loop(self) -> None:
        while not self._halt.wait(self.poll_s):
            self.check(time.monotonic())


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return 200 <= r.status < 300
    except OSError:
        return False


def tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def attrib_argv(*args: str) -> list[str]:
    """The same `attrib` this process runs, as a child command."""
    return [sys.executable, "-m", "ops.cli", *args]


def settings_env(s: Settings, sections: Sequence[str], log_level: str = "INFO") -> dict[str, str]:
    """This process's environment minus ATTRIB_*, plus ``var_dir`` and the named sections of ``s`` as ATTRIB_* JSON:
    a child `attrib` process then loads the same settings the parent built in code."""
    d = s.model_dump(mode="json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    env["ATTRIB_VAR_DIR"] = d["var_dir"]
    for section in sections:
        env[f"ATTRIB_{section.upper()}"] = json.dumps(d[section])
    env["ATTRIB_LOG_LEVEL"] = log_level
    return env

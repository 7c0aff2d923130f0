"""Run the pipeline's services as child processes for `attrib run`: start, wait until ready, stop in reverse order."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
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
            if self.ready_url is None or _answers(self.ready_url):
                return
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} not ready after {timeout_s:.0f} s at {self.ready_url}; see {self.log}")
            time.sleep(0.2)

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

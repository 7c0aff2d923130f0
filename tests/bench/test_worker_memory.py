"""bench/worker_memory.py runs: a real worker on the session's broker fed until it has caught up (it once exited at
start-up on a settings change nobody ran it after)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_memory_bench_feeds_a_worker_until_it_caught_up(kafka_bootstrap: str) -> None:
    out = subprocess.run([sys.executable, "bench/worker_memory.py", "--bootstrap", kafka_bootstrap, "--seconds", "6",
                          "--rate", "100", "--users", "200", "--grow-s", "3", "--every", "2", "--partitions", "2"],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert rows, out.stdout
    _, fed, users, _, rss_mb, _ = rows[-1]
    assert int(fed) >= 500 and 0 < int(users) <= 200 and float(rss_mb) > 0

"""`attrib worker` refuses an unknown store with a clear message before touching Kafka."""

from __future__ import annotations

import subprocess
import sys


def test_unknown_store_is_refused():
    r = subprocess.run([sys.executable, "-m", "ops.cli", "worker", "--store", "redis://x", "--metrics-port", "0"],
                       capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    assert r.returncode == 2
    assert "unsupported store 'redis://x'" in r.stderr

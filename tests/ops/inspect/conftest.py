from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.ops.inspect.cdp import find_chromium


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed on first use when we can (root + apt-get), else the browser tests skip."""
    found = find_chromium()
    if found:
        return found
    why = "chromium is not installed"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True, env=env)
        if r.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env)
            r = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True,
                               env=env)
        found = find_chromium()
        if found:
            return found
        why += f" and `apt-get install -y chromium` failed: {(r.stderr or r.stdout).strip()[-300:]}"
    else:
        why += " (run `make browser` as root, or `apt-get install -y chromium`)"
    pytest.skip(why)

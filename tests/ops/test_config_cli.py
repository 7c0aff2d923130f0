"""`attrib config` (and every command) refuses sources the ingress could not run, naming the key as it was written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAD = '[[sources]]\nname = "partner"\nmmp = "generic"\nverify = ["hmac"]\n'  # hmac without a secret


def _attrib(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")}
    return subprocess.run([sys.executable, "-m", "ops.cli", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**clean, "ATTRIB_VAR_DIR": str(tmp_path / "var"), **env})


def test_config_fails_on_a_source_naming_the_toml_key(tmp_path: Path) -> None:
    cfg = tmp_path / "attrib.toml"
    cfg.write_text(BAD)
    got = _attrib(tmp_path, "config", ATTRIB_CONFIG=str(cfg))
    assert got.returncode == 2, got.stdout
    assert f"sources[0].verify (in {cfg})" in got.stderr and "ATTRIB_SOURCES" not in got.stderr
    assert "Traceback" not in got.stderr and got.stdout == ""


def test_the_same_from_the_environment_names_the_variable(tmp_path: Path) -> None:
    env = {"ATTRIB_SOURCES": json.dumps([{"name": "partner", "mmp": "generic", "verify": ["hmac"]}])}
    got = _attrib(tmp_path, "send", **env)
    assert got.returncode == 2 and "ATTRIB_SOURCES[0]__VERIFY" in got.stderr, got.stderr
    unverified = _attrib(tmp_path, "config", ATTRIB_SOURCES=json.dumps([{"name": "p", "mmp": "generic"}]))
    assert unverified.returncode == 2 and "ATTRIB_SOURCES[0]__VERIFY" in unverified.stderr, unverified.stderr

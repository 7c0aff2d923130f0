"""The source configuration example in the README's Ingress section loads and compiles (the docs can't drift from the
code)."""

from __future__ import annotations

import re
from pathlib import Path

from attrib.settings import load
from ingest.sources import compile_all

DOC = Path(__file__).resolve().parents[2] / "README.md"


def test_documented_toml_compiles(tmp_path, monkeypatch):
    blocks = [b for b in re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S) if "[ingest]" in b]
    assert len(blocks) == 1
    cfg = tmp_path / "attrib.toml"
    cfg.write_text(blocks[0])
    monkeypatch.setenv("ATTRIB_CONFIG", str(cfg))
    s = load()
    plans = compile_all(s)
    assert {"branch-prod", "appsflyer-ios", "adjust", "singular", "linkrunner", "partner"} <= set(plans)
    assert plans["singular"].verify.names == ["ip_allowlist", "url_secret"]
    assert plans["appsflyer-ios"].options.token_header == "X-Af-Push-Token"
    assert plans["partner"].verify.names == ["https_only", "hmac"]

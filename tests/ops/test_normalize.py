from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ops import cli
from tests.schemas.conftest import SAMPLES, sample_mmp, wire


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str],
         stdin: bytes) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("s", SAMPLES, ids=[s["sample_id"] for s in SAMPLES])
def test_normalize_prints_canonical_events(s: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    body, qs, _ = wire(s)
    argv = ["normalize", "--mmp", sample_mmp(s)] + (["--query"] if not body else [])
    rc, out, err = _run(monkeypatch, capsys, argv, body or f"https://hooks.example.com/x?{qs}\n".encode())
    assert rc == 0, err
    ev = json.loads(out)
    assert ev["event_name"] == s["expected"]["event_name"]
    assert ev["media_source"] == s["expected"]["media_source"]
    if s["expected"]["revenue"] is not None:
        assert float(ev["revenue"]) == s["expected"]["revenue"]


def test_error_names_the_field(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(monkeypatch, capsys, ["normalize", "--mmp", "appsflyer"],
                        b'{"event_name": "af_purchase", "event_time": "yesterday"}')
    assert rc == 1 and out == ""
    assert "invalid_field" in err and "event_time" in err


def test_source_options_apply(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                              tmp_path: Path) -> None:
    cfg = tmp_path / "attrib.toml"
    cfg.write_text('[[sources]]\nname = "lr"\nmmp = "linkrunner"\napp_id = "com.x"\nverify = ["none"]\n'
                   '[sources.options.event_types]\nsignup = "custom"\n')
    body = json.dumps(next(s for s in SAMPLES if s["sample_id"].startswith("linkrunner_02"))["body"]).encode()
    monkeypatch.setenv("ATTRIB_CONFIG", str(cfg))  # cli.main sets it from --config; monkeypatch undoes that
    rc, out, err = _run(monkeypatch, capsys, ["--config", str(cfg), "normalize", "--source", "lr"], body)
    assert rc == 0, err
    ev = json.loads(out)
    assert (ev["event_type"], ev["app_id"], ev["source"]) == ("custom", "com.x", "lr")
    rc, _, err = _run(monkeypatch, capsys, ["--config", str(cfg), "normalize", "--source", "nope"], body)
    assert rc == 2 and "nope" in err


def test_registered_console_command() -> None:
    exe = Path(sys.executable).with_name("attrib")
    r = subprocess.run([str(exe), "normalize", "--mmp", "generic"], input=b"not json", capture_output=True,
                       timeout=60)
    assert r.returncode == 1 and b"invalid_json" in r.stderr


@pytest.mark.parametrize("mmp", ["appsflyer", "branch", "generic"])
def test_show_plan_prints_the_generated_function(mmp: str, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(monkeypatch, capsys, ["normalize", "--show-plan", mmp], b"")
    assert rc == 0, err
    assert out.startswith(f"# generated for mmp {mmp!r}\ndef bind(MMP, SOURCE,")
    assert "\n    def normalize(delivery):\n" in out
    compile(out, "<show-plan>", "exec")  # the printed text is the Python that runs
    assert "ev['event_name'] = event_name" in out and "del props[" in out

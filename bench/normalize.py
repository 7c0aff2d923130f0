"""Normalizer throughput over the MMP samples: events/s for normalize() alone, with Avro encoding, and user_key().

Run: .venv/bin/python bench/normalize.py [--seconds N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attrib.settings import SourceSettings
from schemas import avro
from schemas.normalize import normalize
from schemas.user_key import user_key


def deliveries() -> list[tuple[SourceSettings, dict[str, Any]]]:
    out = []
    for p in sorted((ROOT / "tests" / "schemas" / "samples").glob("*.json")):
        s = json.loads(p.read_text())
        mmp = "branch" if s["mmp"] == "branch_legacy" else s["mmp"]
        body = b"" if s["body"] is None else json.dumps(s["body"], ensure_ascii=False).encode()
        raw = {"delivery_id": "d", "source": "b", "mmp": mmp, "app_id": None, "method": s["method"], "path": "/",
               "query_string": s.get("raw_query_string") or "", "body": body, "remote_addr": "",
               "headers": {"content-type": s["content_type"]} if s["content_type"] else {},
               "received_at": 1_730_000_000_000, "user_key": ""}
        out.append((SourceSettings(name="b", mmp=mmp), raw))
    return out


def rate(label: str, fn: Callable[[Any], Any], items: list[Any], seconds: float) -> None:
    """Events/s per CPU-second of this process (process time: the machine may be shared; wall time would measure
    the neighbours)."""
    n, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        for it in items:
            fn(it)
        n += len(items)
    el = time.process_time() - start
    print(f"{label:<34} {n / el:>10,.0f} /s per CPU-s  ({n} in {el:.1f} CPU-s, {len(items)} samples)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    items = deliveries()
    rate("normalize()", lambda it: normalize(*it), items, a.seconds)
    rate("normalize() + avro.encode", lambda it: [avro.encode("canonical_event", e) for e in normalize(*it)],
         items, a.seconds)
    rate("user_key()", lambda it: user_key(it[0].mmp, it[1]["body"], it[1]["query_string"],
                                          it[1]["headers"].get("content-type"), {}), items, a.seconds)


if __name__ == "__main__":
    main()

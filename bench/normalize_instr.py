"""Normalizer cost in instructions per delivery (valgrind callgrind), which a shared machine's load does not move —
the primary figure for the normalizer; ``bench/normalize.py`` gives the CPU-time ratios.

Each figure is two runs of this script under callgrind with the same imports and the same warm-up (every delivery of
both sets through both paths, so plans and caches are built alike): one then normalizes nothing, the other ``--passes``
times over the set; the difference over the deliveries normalized is the cost of one delivery.

Run: .venv/bin/python bench/normalize_instr.py [--paths fast,reference] [--sets mix,samples]
     [--passes-mix 10] [--passes-samples 40]
Needs ``valgrind`` on PATH. Slow (callgrind runs Python ~50× slower): about a minute per figure.
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _bench() -> Any:
    """bench/normalize.py: the same deliveries as the CPU-time bench."""
    sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module("normalize")


def _child(data: str, which: str, passes: int) -> None:
    bench = _bench()
    from schemas.normalize import normalize
    from schemas.normalize.reference import normalize as reference

    sets = {"samples": bench.deliveries(), "mix": bench.synthetic()}
    for items in sets.values():  # warm plans and caches identically, whatever is counted
        for s, r in items:
            normalize(s, r)
            reference(s, r)
    fn = reference if which == "reference" else normalize
    items = sets[data]
    for _ in range(passes):
        for s, r in items:
            fn(s, r)


def _count(data: str, which: str, passes: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__, "--child",
         data, which, str(passes)], capture_output=True, text=True, check=True)
    m = re.search(r"Collected : (\d+)", out.stderr)
    if m is None:
        raise SystemExit(f"no callgrind total in:\n{out.stderr[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", default="fast,reference")
    ap.add_argument("--sets", default="mix,samples")
    ap.add_argument("--passes-mix", type=int, default=10, help="passes over the 300 mix deliveries")
    ap.add_argument("--passes-samples", type=int, default=40, help="passes over the 25 samples")
    a = ap.parse_args()
    bench = _bench()
    sizes = {"mix": len(bench.synthetic()), "samples": len(bench.deliveries())}
    passes = {"mix": a.passes_mix, "samples": a.passes_samples}
    for data in a.sets.split(","):
        base: dict[str, int] = {}
        for which in a.paths.split(","):
            if not base:  # start-up and warm-up are the same for either path
                base["0"] = _count(data, which, 0)
            n = passes[data] * sizes[data]
            per = (_count(data, which, passes[data]) - base["0"]) / n
            print(f"{data:<8} {which:<10} {per / 1000:8.1f} k instructions per delivery ({n} deliveries)", flush=True)


if __name__ == "__main__":
    main()

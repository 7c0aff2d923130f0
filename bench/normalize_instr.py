"""Normalizer cost in instructions per delivery (valgrind callgrind), which a shared machine's load does not move —
the primary figure for the normalizer; ``bench/normalize.py`` gives the CPU-time ratios.

Each figure is two runs of this script under callgrind with the same imports and the same warm-up (every delivery of
both sets through both paths, so plans and caches are built alike): one then normalizes nothing, the other ``--passes``
times over the set; the difference over the deliveries normalized is the cost of one delivery.

Run: .venv/bin/python bench/normalize_instr.py [--paths fast,reference] [--sets mix,samples]
     [--passes-mix 10] [--passes-samples 40] [--per-sample]

``--per-sample``: one callgrind run per path instead, the samples one at a time, each followed by a call of
``os.getppid`` that callgrind dumps its counts before (``--dump-before``): instructions per delivery of each sample,
fast against reference — where the ratio is lowest is where to cut.
Needs ``valgrind`` on PATH. Slow (callgrind runs Python ~50× slower): about a minute per figure.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile
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


def _child_each(which: str, passes: int) -> None:
    """Each sample ``passes`` times, then ``os.getppid()``: callgrind dumps the counts since the last dump."""
    bench = _bench()
    from schemas.normalize import normalize
    from schemas.normalize.reference import normalize as reference

    items = bench.deliveries()
    for s, r in items:
        normalize(s, r)
        reference(s, r)
    fn = reference if which == "reference" else normalize
    os.getppid()
    for s, r in items:
        for _ in range(passes):
            fn(s, r)
        os.getppid()


def _count_each(which: str, passes: int) -> list[float]:
    """Instructions per delivery of each sample, in ``deliveries()`` order."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-before=os_getppid",
             sys.executable, __file__, "--child-each", which, str(passes)], capture_output=True, text=True,
            check=True)
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        totals = []
        for p in dumps:
            m = re.search(r"^(?:summary|totals): (\d+)", p.read_text(), re.M)
            totals.append(int(m.group(1)) if m else 0)
    # dump 1 is start-up and warm-up; each next one a sample (the getppid call's own cost is noise)
    return [t / passes for t in totals[1:]]


def per_sample(passes: int, paths: list[str]) -> None:
    names = [p.stem for p in sorted((ROOT / "tests" / "schemas" / "samples").glob("*.json"))]
    got = {which: _count_each(which, passes)[:len(names)] for which in paths}
    print(f"{'sample':<54}" + "".join(f"{w:>11}" for w in paths) + ("   ratio" if len(paths) == 2 else ""))
    rows = [*zip(names, *got.values(), strict=True)]
    for n, *per in rows:
        print(f"{n:<54}" + "".join(f"{c / 1000:10.1f}k" for c in per) + (f"  {per[1] / per[0]:6.2f}"
                                                                         if len(per) == 2 else ""))
    means = [sum(c) / len(names) for c in got.values()]
    print(f"{'mean':<54}" + "".join(f"{m / 1000:10.1f}k" for m in means) + (f"  {means[1] / means[0]:6.2f}"
                                                                            if len(means) == 2 else ""))


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
    if len(sys.argv) == 4 and sys.argv[1] == "--child-each":
        _child_each(sys.argv[2], int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", default="fast,reference")
    ap.add_argument("--sets", default="mix,samples")
    ap.add_argument("--passes-mix", type=int, default=10, help="passes over the 300 mix deliveries")
    ap.add_argument("--passes-samples", type=int, default=40, help="passes over the 25 samples")
    ap.add_argument("--per-sample", action="store_true", help="instructions per delivery of each sample")
    a = ap.parse_args()
    if a.per_sample:
        per_sample(a.passes_samples, a.paths.split(","))
        return
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

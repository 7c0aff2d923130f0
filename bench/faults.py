"""Faults on a whole local pipeline (on demand, not in CI): what a broker crash or a sink crash costs.

    .venv/bin/python bench/faults.py broker-kill [--set ATTRIB_KAFKA__PRODUCE_TIMEOUT_S=15]
    .venv/bin/python bench/faults.py sink-kill [--kills 3] [--set ATTRIB_…=…]

broker-kill: a 3-node cluster (RF 3, min ISR 2) under `attrib run`, 100 signed installs/s (open loop) for 30 s, the
leader of raw partition 0 SIGKILLed at 8 s and restarted at 18 s; prints refusals, the longest answer, and lost /
duplicated acknowledged events in `events FINAL`. sink-kill is `bench/sink_restart.py --pipeline` (the one sink-crash
bench): one broker, 50 installs/s, the sink SIGKILLed (and restarted by `attrib run`) every time it has resumed;
prints kill → answering and kill → loading again.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sink_restart import pipeline_kills
from tests.ops.pipeline import broker_kill_run, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fault", choices=["broker-kill", "sink-kill"])
    ap.add_argument("--kills", type=int, default=1, help="sink-kill: how many times (default 1)")
    ap.add_argument("--set", action="append", default=[], metavar="ATTRIB_KEY=VALUE",
                    help="extra settings for every process of the pipeline (repeatable)")
    args = ap.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.set)
    if args.fault == "sink-kill":
        out = pipeline_kills(args.kills, extra)
    else:
        traffic, counts, facts = broker_kill_run(Path(tempfile.mkdtemp(prefix="attrib-faults-")), **extra)
        out = {"fault": args.fault, "settings": extra, **summary(traffic, counts, facts)}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`attrib partners`: the canonical partner mapping in the warehouse.

``reload`` puts schemas/partners.csv + ``reporting.partners`` into ``partner_map`` (the sink also does this at every
start), prints every value whose partner changed, and rebuilds the rollups of the days those values occur on.
``unmapped`` lists the values no row maps yet. With the embedded engine, stop the sink first (it owns the files).
"""

from __future__ import annotations

import argparse

from attrib.settings import Settings

HELP = "canonical partner mapping: reload it (re-mapping history) or list unmapped values"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["reload", "unmapped"])


def main(args: argparse.Namespace, settings: Settings) -> int:
    from attrib.errors import DependencyUnavailable
    from ops.warehouse import open_for_writes
    from sinks import migrate, pack, rollups
    from sinks import partners as sink_partners
    from sinks.clickhouse import connect

    db = settings.clickhouse.database
    try:
        client = open_for_writes(settings)
    except DependencyUnavailable as exc:
        print(f"attrib partners {args.action}: {exc}")
        return 1
    try:
        migrate.apply(client, db, cluster=settings.clickhouse.cluster)
        if args.action == "unmapped":
            analyst = connect(settings, database=db)  # the pack names tables unqualified
            try:
                res = analyst.query(pack.load()["unmapped_partners"])
            finally:
                analyst.close()
            for key, raws, events, installs, first, last in res.result_rows:
                print(f"{key}\t{', '.join(raws)}\tevents {events:,}\tinstalls {installs:,}\t{first} .. {last}")
            print(f"{len(res.result_rows)} unmapped partner values")
            return 0
        synced = sink_partners.sync(client, db, sink_partners.mapping(settings))
        if synced.generation is None:
            print("partner mapping unchanged; nothing to re-map")
            return 0
        for c in synced.changes:
            print(f"{c.key}: {c.old[0] if c.old else '(unmapped)'} -> {c.new[0] if c.new else '(unmapped)'}")
        rollups.refresh(client, db, synced.dirty_days, reporting=settings.reporting.currency)
        print(f"{len(synced.changes)} values re-mapped; rollups rebuilt for {len(synced.dirty_days)} days")
        return 0
    finally:
        client.close()

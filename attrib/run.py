"""`make run` / `attrib run`: bring the local stack up and show where to look.

Grows with the pipeline: each stage that exists is started here, sample traffic is sent, and a report is printed.
"""

from __future__ import annotations

import argparse

from attrib.settings import Settings


def run(args: argparse.Namespace, s: Settings) -> int:
    from attrib.stack import Broker, fetch_jars
    from attrib.topics import ensure_topics
    from sinks import migrate
    from sinks.clickhouse import connect, describe

    fetch_jars(s)
    broker = Broker.from_settings(s)
    broker.start()
    ensure_topics(s)
    client = connect(s)
    migrate.migrate(client, s)
    tables = [r[0] for r in client.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        parameters={"db": s.clickhouse.database}).result_rows]
    client.close()

    print(f"""
attrib local stack is up
  kafka       {broker.bootstrap}  (pid {broker.pid()}, data in {broker.home}, log {broker.log_file})
  topics      {', '.join(s.topics.all())}  ({s.topics.partitions} partitions each)
  clickhouse  {describe(s)}, database {s.clickhouse.database}: {', '.join(tables)}

next
  .venv/bin/attrib stack status     what runs
  .venv/bin/attrib config           effective settings (secrets masked)
  make down                         stop the broker (data stays in var/)
""")
    return 0

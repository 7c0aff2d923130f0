"""`attrib` command line. Each subcommand is a thin shell over a module; settings come from env/TOML."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from attrib import settings as settings_mod
from attrib.errors import AttribError, ConfigurationError
from attrib.settings import ConfigError, Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _stack(args: argparse.Namespace, s: Settings) -> int:
    from attrib.topics import ensure_topics
    from ops.stack import Cluster, fetch_jars

    if args.action == "fetch":
        print(f"broker jars ready in {fetch_jars(s)}")
        return 0
    c = Cluster.from_settings(s, args.brokers or (s.stack.brokers if args.action == "up" else None))
    if args.action == "up":
        fetch_jars(s)
        procs = c.launch()
        try:  # the warehouse needs no broker: its migrations run while the JVMs start
            _migrate(args, s)
        finally:
            c.wait(procs)
        clients = c.topic_settings(s).model_copy(update={"kafka": s.kafka.model_copy(
            update={"bootstrap_servers": c.bootstrap})})
        created = ensure_topics(clients)
        if created:
            print(f"created topics: {', '.join(created)}")
        if len(c.nodes) > 1:
            print(f"clients: ATTRIB_KAFKA__BOOTSTRAP_SERVERS={c.bootstrap} "
                  f"ATTRIB_TOPICS__REPLICATION_FACTOR={clients.topics.replication_factor}")
    elif args.action == "down":
        c.stop()
    elif args.action == "status":
        up = 0
        for b, pid in c.running():
            ok = pid is not None and b.answers()
            up += ok
            name = f"kafka node {b.node_id}" if len(c.nodes) > 1 else "kafka"
            print(f"{name}: {'running' if ok else 'stopped'}" + (f" (pid {pid}) on {b.bootstrap}" if pid else ""))
        print(f"kafka data: {c.nodes[0].home if len(c.nodes) == 1 else c.nodes[0].home.parent}")
        from ops.warehouse import holder, sink_health
        from sinks.clickhouse import describe

        health = sink_health(s)
        print(f"sink: {'running' if health else 'not running'} (query port {s.sink.query_port}"
              + (f", health {health.get('status', '?')})" if health else ")"))
        held = holder(s) if s.clickhouse.embedded else None
        print(f"clickhouse: {describe(s)}" + (f", held by {held}" if held else ""))
        return 0 if up == len(c.nodes) else 3
    return 0


def _migrate(args: argparse.Namespace, s: Settings) -> int:
    from sinks import migrate
    from sinks.clickhouse import calls, close, describe

    if getattr(args, "topics", False):
        from attrib.topics import ensure_topics

        created = ensure_topics(s)
        print(f"kafka topics created: {', '.join(created) or 'none missing'}")

    if s.clickhouse.embedded and _sink_holds(s):
        return 0
    from ops.warehouse import open_for_writes
    from sinks.clickhouse import connect

    client = open_for_writes(s) if s.clickhouse.embedded else connect(s)  # a held engine: one line naming the holder
    try:
        with calls():
            done = migrate.migrate(client, s)
    finally:
        close(client)
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in done) or "none pending"
    print(f"clickhouse ({describe(s)}): migrations applied: {names}")
    return 0


def _sink_holds(s: Settings) -> bool:
    """While a sink runs it owns the embedded warehouse (and applied the migrations when it started): check through
    its read-only query port instead of failing to open the directory. False when no sink answers."""
    from attrib.errors import DependencyUnavailable
    from ops.sql import query_rows
    from ops.warehouse import sink_health
    from sinks.clickhouse import describe
    from sinks.migrate import discover

    if sink_health(s) is None:
        return False
    rows = query_rows(s, f"SELECT version FROM {s.clickhouse.database}.schema_migrations FINAL")
    applied = {int(r["version"]) for r in rows}
    known = discover()
    superseded = {v for m in known for v in m.supersedes}
    pending = [f"{m.version:04d}_{m.name}" for m in known if m.version not in applied | superseded]
    if pending:
        raise DependencyUnavailable(f"the running sink holds the embedded warehouse and {len(pending)} migration(s) "
                                    f"are pending ({', '.join(pending)}): restart the sink, it applies them at start")
    print(f"clickhouse ({describe(s)}): held by the running sink (port {s.sink.query_port}), which applied the "
          f"migrations at its start: none pending")
    return True


def _config(args: argparse.Namespace, s: Settings) -> int:
    print(json.dumps(s.redacted(), indent=2))
    print(f"settings file: {settings_mod.config_file() or 'none (environment and defaults only)'}", file=sys.stderr)
    return 0


def _run(args: argparse.Namespace, s: Settings) -> int:
    from ops.run import run

    return run(args, s)


COMMANDS: dict[str, Handler] = {"stack": _stack, "migrate": _migrate, "config": _config, "run": _run}

# Subcommands owned by an area live in that area's module, which defines HELP: str, add_arguments(parser) and
# main(args, settings) -> int. One line per command here; keep the table sorted.
PLUGINS: dict[str, str] = {
    "alerts": "ops.alerts",
    "dashboard": "ops.dashboard.command",
    "fx": "ops.fx.command",
    "ingest": "ingest.server",
    "inspect": "ops.inspect.command",
    "normalize": "ops.normalize",
    "notify": "alerts.slack",
    "partners": "ops.partners",
    "replay": "ops.replay.command",
    "route": "sinks.route.command",
    "send": "ops.traffic.send",
    "sink": "sinks.command",
    "sql": "ops.sql",
    "tail": "ops.inspect.tail",
    "worker": "streams.worker",
}


# Commands that talk to Kafka: their settings are checked against the brokers before they start.
KAFKA_COMMANDS = frozenset({"alerts", "ingest", "inspect", "notify", "replay", "route", "sink", "tail", "worker"})


def _plugin(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(PLUGINS[name])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="attrib", description=__doc__)
    p.add_argument("--config", help="TOML settings file (same as ATTRIB_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True)
    st = sub.add_parser("stack", help="local Kafka broker(s): fetch jars, start, stop, status")
    st.add_argument("action", choices=["up", "down", "status", "fetch"])
    st.add_argument("--brokers", type=int, choices=range(1, 10), metavar="N",
                    help="nodes (combined broker+controller; RF min(3, N), min ISR RF-1); default: for `up` "
                         "stack.brokers, else what the last `up` started")
    mg = sub.add_parser("migrate", help="apply ClickHouse migrations (idempotent)")
    mg.add_argument("--topics", action="store_true", help="also create missing Kafka topics")
    sub.add_parser("config", help="print the effective settings, secrets masked")
    from ops.run import add_arguments as run_arguments

    run_arguments(sub.add_parser("run", help="local stack + pipeline with sample traffic (what `make run` does)"))
    for name in PLUGINS:
        mod = _plugin(name)
        mod.add_arguments(sub.add_parser(name, help=mod.HELP, description=mod.HELP))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config:
        os.environ[settings_mod.CONFIG_ENV] = args.config
    try:
        s = settings_mod.load()
        from ingest.sources import compile_all

        compile_all(s)  # every command refuses sources the ingress could not run (`attrib config` included)
    except ConfigError as exc:
        print(f"attrib: {exc}", file=sys.stderr)
        return 2
    from attrib import logs

    logs.setup(s.log_level)
    try:
        if args.command in KAFKA_COMMANDS:  # a refused password or certificate: one line now, not retries forever
            from attrib import kafka

            kafka.preflight(s)
        if args.command in PLUGINS:
            return int(_plugin(args.command).main(args, s))
        return COMMANDS[args.command](args, s)
    except KeyboardInterrupt:
        return 130
    except AttribError as exc:  # ours: one clear line for the operator (2 for configuration, as above); anything
        # else is a bug and keeps its traceback
        print(f"attrib {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigurationError) else 1


if __name__ == "__main__":
    sys.exit(main())

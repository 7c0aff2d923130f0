"""`make run` / `attrib run`: the whole pipeline on this machine, with sample traffic and a report.

Starts the broker (or the cluster the last `attrib stack up --brokers N` started), then the sink (it owns the embedded
ClickHouse and applies migrations), the worker, the alert detector, the ingress (and the Slack notifier when a webhook
is configured) as child processes; sends signed deliveries from several MMPs through `attrib send`; waits until the
warehouse has settled; prints a report and where to look; keeps everything running until Ctrl-C — restarting any
service that exits, with backoff, as compose's `restart: unless-stopped` does — then stops it all in reverse order.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from attrib import settings as settings_mod
from attrib.settings import REPO_ROOT, Settings
from ops.supervise import Service, ServiceError, Supervisor, attrib_argv

DEMO_CONFIG = REPO_ROOT / "dev" / "demo.toml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--count", type=int, default=600, help="sample deliveries per source (default 600)")
    p.add_argument("--no-traffic", action="store_true", help="start the pipeline without sending sample traffic")
    p.add_argument("--exit", action="store_true", help="stop everything after the report instead of waiting for Ctrl-C")


def _services(s: Settings) -> list[Service]:
    ingest = f"http://{_loopback(s.ingest.host)}:{s.ingest.port}"
    svcs = [
        Service("sink", attrib_argv("sink"), f"http://127.0.0.1:{s.sink.query_port}/health"),
        Service("worker", attrib_argv("worker"),
                f"http://127.0.0.1:{s.streams.metrics_port}/metrics" if s.streams.metrics_port else None),
        # ready once it owns the counts partition with its tables recovered: alerts judge from the first bucket
        Service("alerts", attrib_argv("alerts"),
                f"http://127.0.0.1:{s.alerts.ready_port}/readyz" if s.alerts.ready_port else None),
        Service("ingest", attrib_argv("ingest"), f"{ingest}/readyz"),
    ]
    if s.slack_webhook_url or s.alerts.slack.webhooks:
        svcs.append(Service("notify", attrib_argv("notify")))
    return svcs


def _ports_taken(s: Settings) -> list[str]:
    """One line per port a service would bind that another process already holds."""
    from ops.ports import in_use

    wanted = [(s.ingest.host or "0.0.0.0", s.ingest.port, "ingest.port", "ATTRIB_INGEST__PORT"),
              ("127.0.0.1", s.sink.query_port, "sink.query_port", "ATTRIB_SINK__QUERY_PORT")]
    if s.streams.metrics_port:
        wanted.append((s.streams.metrics_host, s.streams.metrics_port, "streams.metrics_port",
                       "ATTRIB_STREAMS__METRICS_PORT"))
    if s.alerts.ready_port:
        wanted.append((s.alerts.ready_host, s.alerts.ready_port, "alerts.ready_port", "ATTRIB_ALERTS__READY_PORT"))
    out = []
    for host, port, key, env in wanted:
        who = in_use(host, port)
        if who:
            out.append(f"port {port} ({key}) is already in use by {who}: stop it or set {env}")
    return out


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def _settle(s: Settings, timeout_s: float = 120.0) -> int:
    """Wait until the warehouse's event count stops moving (the worker and sink have caught up)."""
    from ops.sql import query_rows

    last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            n = int(query_rows(s, f"SELECT count() AS n FROM {s.clickhouse.database}.events")[0]["n"])
        except Exception:  # noqa: BLE001 - the sink may still be starting
            n = -1
        if n != last:
            last, stable_since = n, time.monotonic()
        elif n > 0 and time.monotonic() - stable_since > 4:
            return n
        time.sleep(0.5)
    return last


def run(args: argparse.Namespace, s: Settings) -> int:
    from attrib.topics import ensure_topics
    from ops.stack import Cluster, fetch_jars

    if not s.sources:  # a fresh machine: demo sources so there is something to see
        s = _demo(s)
    taken = _ports_taken(s)
    if taken:  # before anything starts: demo traffic (signed, secrets included) must not go to someone else
        print("attrib run: " + "; ".join(taken))
        return 1

    fetch_jars(s)
    cluster = Cluster.from_settings(s)
    cluster.start()
    if len(cluster.nodes) > 1:  # the services (children) reach every node and replicate what they create
        s = cluster.topic_settings(s)
        os.environ["ATTRIB_KAFKA__BOOTSTRAP_SERVERS"] = cluster.bootstrap
        os.environ["ATTRIB_TOPICS__REPLICATION_FACTOR"] = str(s.topics.replication_factor)
        s = settings_mod.load()
    ensure_topics(s)  # internal ones too (the alerts' counts topic, changelogs): before any service joins
    log_dir = s.var_dir / "run" / "logs"
    services = _services(s)
    supervisor = Supervisor(services, log_dir, say=lambda line: print(line, flush=True))
    stopping = False

    def _term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    # Python leaves SIGINT ignored when started in the background by a non-interactive shell (`attrib run &`):
    # install it explicitly so `kill -INT` stops the pipeline there too, as Ctrl-C does in a terminal.
    signal.signal(signal.SIGINT, _term)
    try:
        for svc in services:
            print(f"starting {svc.name:<7} log {svc.log or log_dir / (svc.name + '.log')}", flush=True)
            svc.start(log_dir)
            svc.wait_ready(120)
        supervisor.start()  # from here on a service that exits is restarted, not fatal
        if not getattr(args, "no_traffic", False):
            _traffic(s, getattr(args, "count", 600))
            print("waiting for the worker and sink to catch up …", flush=True)
            _settle(s)
        from ops.report import report

        print()
        print(report(s))
        print(_worker_line(s))
        print(_where(s, log_dir))
        if getattr(args, "exit", False):
            return 0
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        stopping = True
        print("\nstopping …", flush=True)
        return 0
    except ServiceError as exc:
        print(f"attrib run: {exc}")
        return 1
    finally:
        supervisor.stop()
        for svc in reversed(services):
            svc.stop()
        cluster.stop()
        if stopping:
            print("stopped: ingress, worker, alerts, sink and broker (data stays in var/)")


def _demo(s: Settings) -> Settings:
    """Settings with the demo sources. Without a settings file they are copied to ``<var_dir>/demo.toml``, which
    every later `attrib` command finds on its own (settings.config_file): the hint `attrib send`, `make send`,
    `tail`, `replay --dry-run` and `config` then see the sources this pipeline verifies."""
    if os.environ.get(settings_mod.CONFIG_ENV):  # the user's own file, without sources: demo for this run only
        os.environ[settings_mod.CONFIG_ENV] = str(DEMO_CONFIG)
        print(f"no sources configured: using the demo sources in {DEMO_CONFIG.relative_to(REPO_ROOT)} for this run")
        return settings_mod.load()
    demo = s.var_dir / settings_mod.DEMO_CONFIG_NAME
    demo.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_CONFIG, demo)
    os.environ.setdefault(settings_mod.ENV_PREFIX + "VAR_DIR", str(s.var_dir))  # the children find the same file
    print(f"no sources configured: demo sources copied to {demo}; every attrib command here uses them until you "
          f"configure your own (ATTRIB_CONFIG / ATTRIB_SOURCES) or delete that file", flush=True)
    return settings_mod.load()


def _worker_line(s: Settings) -> str:
    """Live figures only the worker knows: events still waiting for their install are not in the warehouse yet."""
    import urllib.request

    if not s.streams.metrics_port:
        return ""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{s.streams.metrics_port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return "worker: metrics unavailable"
    vals: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("attrib_worker_duplicates_total", "attrib_worker_pending", "attrib_worker_timeouts_total"):
            vals[name] = float(value)
    return (f"worker: {vals.get('attrib_worker_duplicates_total', 0):,.0f} duplicate events dropped  ·  "
            f"{vals.get('attrib_worker_pending', 0):,.0f} events waiting for their install (emitted when it arrives, "
            f"or as pending_timeout after {s.streams.pending_timeout_s / 3600:g} h)\n")


def _traffic(s: Settings, count: int) -> None:
    argv = attrib_argv("send", "--count", str(count), "--duplicates", "0.1", "--out-of-order", "0.15",
                       "--concurrency", "16")
    print(f"sending {count} signed deliveries per source ({len(s.sources)} sources) with 10% duplicates and "
          f"15% purchases/signups before their install …", flush=True)
    subprocess.run(argv, check=False)


def _where(s: Settings, log_dir: Path) -> str:
    ingest = f"http://{_loopback(s.ingest.host)}:{s.ingest.port}"
    return f"""the pipeline is running
  ingress     {ingest}/webhooks/<source>   sources: {', '.join(x.name for x in s.sources)}
              {ingest}/metrics · /readyz · /ops/rejections (why deliveries were refused)
  worker      http://127.0.0.1:{s.streams.metrics_port}/metrics
  alerts      http://127.0.0.1:{s.alerts.ready_port}/readyz
  warehouse   {s.clickhouse.url or 'embedded ClickHouse in ' + str(s.clickhouse_path)}, database {s.clickhouse.database}
  logs        {log_dir}/

keep querying (in another terminal)
  .venv/bin/attrib sql "SELECT event_type, attribution_status, count() FROM {s.clickhouse.database}.events FINAL \\
                        GROUP BY ALL"
  .venv/bin/attrib sql < docs/queries.sql        # or one query from the analyst pack
  .venv/bin/attrib send --count 200             # more signed traffic
  ATTRIB_DASHBOARD__TOKEN=<16+ chars> .venv/bin/attrib dashboard   # charts: open the printed URL + #token=…
a service that exits is restarted (with backoff; said here); Ctrl-C stops everything cleanly."""

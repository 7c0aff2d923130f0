"""docker-compose.yml can't run here (no Docker engine); this keeps it honest against the code instead."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse

import yaml
from prometheus_client import REGISTRY

from attrib.settings import Settings, load
from ops.cli import COMMANDS, PLUGINS, build_parser

COMPOSE = yaml.safe_load((Path(__file__).parent.parent / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _attrib_services() -> dict[str, dict]:
    return {name: svc for name, svc in SERVICES.items() if svc.get("command", [None])[0] == "attrib"}


def _env(svc: dict) -> dict[str, str]:
    # ${VAR:?msg} interpolation is compose's; give it a value as `docker compose` would from the shell
    return {k: str(v).replace("${CLICKHOUSE_PASSWORD:?set CLICKHOUSE_PASSWORD}", "pw") for k, v in
            (svc.get("environment") or {}).items()}


def test_the_stack_has_broker_warehouse_and_attrib_roles():
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:4.")
    assert SERVICES["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert _attrib_services(), "no attrib service in compose"
    for name, svc in SERVICES.items():
        assert "healthcheck" in svc or svc.get("restart") == "no", \
            f"{name}: long-running service without a health check"


def test_every_service_command_is_a_real_subcommand():
    parser = build_parser()
    for name, svc in _attrib_services().items():
        argv = svc["command"][1:]
        assert argv[0] in COMMANDS or argv[0] in PLUGINS, f"{name}: attrib {argv[0]} does not exist"
        parser.parse_args(argv)  # exits (fails the test) on unknown flags


def test_attrib_env_names_are_settings_and_ports_agree(monkeypatch):
    kafka_env = SERVICES["kafka"]["environment"]
    advertised = urlparse(kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0].replace("PLAINTEXT", "kafka"))
    ch_http_port = int(SERVICES["clickhouse"]["ports"][0].split(":")[-1])
    for name, svc in _attrib_services().items():
        env = _env(svc)
        assert env and all(k.startswith("ATTRIB_") for k in env), name
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("ATTRIB_CONFIG")  # the mounted file exists only in the container
        s = load()  # an unknown ATTRIB_* name fails here
        assert s.kafka.bootstrap_servers == f"{advertised.hostname}:{advertised.port}", name
        ch = urlparse(s.clickhouse.url)
        assert ch.hostname == "clickhouse" and ch.port == ch_http_port, name
        assert s.clickhouse.username == SERVICES["clickhouse"]["environment"]["CLICKHOUSE_USER"]
        deps = svc.get("depends_on", {})
        assert {"kafka", "clickhouse"} <= set(deps), f"{name} must wait for kafka and clickhouse"


# --- Production dashboards: Prometheus scrapes every /metrics, Grafana's dashboards name only what the code exports --

DEV = Path(__file__).parent.parent / "dev"
PROMETHEUS = yaml.safe_load((DEV / "prometheus" / "prometheus.yml").read_text())
DATASOURCES = yaml.safe_load((DEV / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text())
DASHBOARDS = {p.stem: json.loads(p.read_text()) for p in sorted((DEV / "grafana" / "dashboards").glob("*.json"))}
# Where each subcommand serves /metrics: (its port's CLI flag, the setting it defaults to, the setting of its bind
# address or None when it always binds every interface / has a --host flag). alerts and notify serve none: their
# output is the alerts table, which the ops dashboard reads through ClickHouse.
METRICS_AT: dict[str, tuple[str | None, Callable[[Settings], int], Callable[[Settings], str] | None]] = {
    "ingest": ("port", lambda s: s.ingest.port, lambda s: s.ingest.host),
    "worker": ("metrics_port", lambda s: s.streams.metrics_port, None),
    "sink": ("query_port", lambda s: s.sink.query_port, lambda s: s.sink.query_host),
    "route": (None, lambda s: s.route.metrics_port, lambda s: s.route.metrics_host),
}
NO_METRICS = {"migrate", "alerts", "notify"}


def _service_settings(svc: dict, monkeypatch) -> Settings:
    with monkeypatch.context() as m:
        for k, v in _env(svc).items():
            m.setenv(k, v)
        m.delenv("ATTRIB_CONFIG")
        return load()


def _scrape_targets() -> dict[str, set[str]]:
    jobs: dict[str, set[str]] = {}
    for job in PROMETHEUS["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics", job["job_name"]
        targets = {t for sc in job.get("static_configs", []) for t in sc["targets"]}
        targets |= {f"{n}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
        jobs[job["job_name"]] = targets
    return jobs


def test_prometheus_scrapes_every_attrib_metrics_endpoint(monkeypatch):
    parser = build_parser()
    jobs = _scrape_targets()
    expected: dict[str, set[str]] = {}
    for name, svc in _attrib_services().items():
        args = parser.parse_args(svc["command"][1:])
        if args.command in NO_METRICS:
            continue
        assert args.command in METRICS_AT, f"{name}: attrib {args.command} — where does it serve /metrics?"
        flag, port_setting, host_setting = METRICS_AT[args.command]
        s = _service_settings(svc, monkeypatch)
        port = getattr(args, flag) if flag and getattr(args, flag) is not None else port_setting(s)
        assert port, f"{name}: metrics are off (port 0)"
        host = getattr(args, "host", None) or (host_setting(s) if host_setting else "0.0.0.0")
        assert host == "0.0.0.0", f"{name}: binds {host}, which Prometheus in another container cannot reach"
        expected[name] = {f"{name}:{port}"}
    assert expected.keys() == {"ingest", "worker", "sink", "route"}
    assert jobs == expected
    for name in expected:  # a health check on another port than the scraped one would hide a dead endpoint
        check = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert f"localhost:{next(iter(expected[name])).split(':')[1]}/" in check, name
    prom = SERVICES["prometheus"]
    assert "./dev/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]


def _exported_metric_names() -> set[str]:
    """Every series name the services expose: prometheus_client families (with the suffixes each type adds) plus the
    sink's hand-written exposition."""
    import ingest.metrics  # noqa: F401  (registers into the default registry)
    import streams.metrics  # noqa: F401
    from sinks import rollups
    from sinks.route.metrics import RouteMetrics
    from sinks.service import Metrics, Sink

    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count", "_created", "")}
    names = set()
    for registry in (REGISTRY, RouteMetrics().registry):
        for fam in registry.collect():
            if fam.name.startswith("attrib_"):
                names |= {fam.name + sfx for sfx in suffixes[fam.type]}
    sink = SimpleNamespace(metrics=Metrics(inserted={"events": 1}),
                           refresher=rollups.Refresher(lambda: None, "db", 1.0))  # type: ignore[arg-type,return-value]
    text = Sink.prometheus(sink)  # type: ignore[arg-type]
    names |= {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0) for line in text.splitlines()  # type: ignore[union-attr]
              if line and not line.startswith("#")}
    return names


PROMQL_WORDS = {"sum", "max", "min", "avg", "count", "rate", "increase", "irate", "by", "without", "le", "time",
                "histogram_quantile", "on", "ignoring", "and", "or", "unless", "bool", "offset"}


def _promql_metrics(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}|\[[^]]*\]|\"[^\"]*\"", " ", expr)  # label matchers, ranges, strings
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # grouping label lists
    return {w for w in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if w not in PROMQL_WORDS}


def _panels(dash: dict) -> list[dict]:
    return [q for p in dash["panels"] for q in [p, *p.get("panels", [])]]


def test_the_ops_dashboard_charts_only_metrics_the_code_exports():
    exported = _exported_metric_names()
    exprs = [t["expr"] for p in _panels(DASHBOARDS["ops"]) for t in p["targets"] if "expr" in t]
    used = {m for e in exprs for m in _promql_metrics(e)}
    assert used, "the ops dashboard has no Prometheus panel"
    assert used - exported == set(), f"not exported by any service: {sorted(used - exported)}"
    # each stage is on it: deliveries by source+status, produce latency, worker, sink, route
    for prefix in ("attrib_ingest_requests", "attrib_ingest_produce_seconds", "attrib_worker_lag",
                   "attrib_worker_dead_letters", "attrib_sink_inserted_rows", "attrib_sink_last_flush",
                   "attrib_route_sent", "attrib_route_failed_attempts"):
        assert any(m.startswith(prefix) for m in used), prefix


def test_dashboards_are_provisioned_grafana_json():
    uids = {d["type"]: d["uid"] for d in DATASOURCES["datasources"]}
    assert uids.keys() == {"prometheus", "grafana-clickhouse-datasource"}
    prom_url = urlparse(next(d["url"] for d in DATASOURCES["datasources"] if d["type"] == "prometheus"))
    assert prom_url.hostname in SERVICES and f"{prom_url.port}:{prom_url.port}" in SERVICES["prometheus"]["ports"]
    ch = next(d for d in DATASOURCES["datasources"] if d["type"] == "grafana-clickhouse-datasource")
    assert ch["jsonData"]["host"] == "clickhouse" and ch["jsonData"]["protocol"] == "http"
    assert f"{ch['jsonData']['port']}:{ch['jsonData']['port']}" in SERVICES["clickhouse"]["ports"]
    assert ch["jsonData"]["username"] == SERVICES["clickhouse"]["environment"]["CLICKHOUSE_USER"]
    assert ch["jsonData"]["defaultDatabase"] == Settings().clickhouse.database
    grafana = SERVICES["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_PLUGINS_PREINSTALL_SYNC"]
    assert ch["secureJsonData"]["password"].lstrip("$") in grafana["environment"]
    provider = yaml.safe_load((DEV / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./dev/grafana/dashboards"] == provider["providers"][0]["options"]["path"]
    assert mounts["./dev/grafana/provisioning"] == "/etc/grafana/provisioning"

    assert DASHBOARDS.keys() == {"ops", "analyst"}
    assert len({d["uid"] for d in DASHBOARDS.values()}) == 2
    for name, dash in DASHBOARDS.items():
        assert dash["uid"] and len(dash["uid"]) <= 40 and dash["title"] and dash["schemaVersion"] >= 36, name
        panels = _panels(dash)
        assert panels and len({p["id"] for p in panels}) == len(panels), f"{name}: panel ids must be unique"
        for p in panels:
            assert p["type"] and p["title"] and {"x", "y", "w", "h"} <= p["gridPos"].keys(), (name, p.get("title"))
            for t in p["targets"]:
                ds = t.get("datasource") or p["datasource"]
                assert ds["uid"] == uids.get(ds["type"]), (name, p["title"], ds)
                assert ("expr" in t) == (ds["type"] == "prometheus") and ("rawSql" in t) != ("expr" in t)
                if "rawSql" in t:  # the plugin's SQL editor; timeSeries turns long rows into one series per label
                    assert t["editorType"] == "sql" and t["queryType"] == (
                        "timeSeries" if p["type"] == "timeseries" else "table"), (name, p["title"])
        for v in dash["templating"]["list"]:
            assert v["datasource"]["uid"] == uids[v["datasource"]["type"]], (name, v["name"])


def _grafana_sql(sql: str, db: str, variables: dict[str, str]) -> str:
    """What Grafana's ClickHouse plugin sends: its macros and this dashboard's variables expanded."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", r"\1 >= toDateTime64('2024-06-01 00:00:00', 3) AND \1 <= now64(3)", sql)
    sql = re.sub(r"\$__dateFilter\((\w+)\)", r"\1 >= toDate('2024-06-01') AND \1 <= today()", sql)
    sql = re.sub(r"\$\{(\w+):singlequote\}", lambda m: ",".join(f"'{v}'" for v in variables[m.group(1)].split("|")),
                 sql)
    assert "$" not in sql, f"unexpanded macro or variable: {sql}"
    return sql.replace("attribution.", f"{db}.")


def test_the_dashboards_sql_names_tables_and_columns_the_migrations_create(chdb_path, tmp_path):
    from sinks import migrate
    from sinks.clickhouse import close, connect

    s = Settings(var_dir=tmp_path, clickhouse={"path": chdb_path, "database": f"t_{uuid.uuid4().hex[:8]}"})
    db = s.clickhouse.database
    client = connect(s)
    try:
        migrate.apply(client, db)
        columns = {(t, c) for t, c in client.query(
            "SELECT table, name FROM system.columns WHERE database = {db:String}", parameters={"db": db}).result_rows}
        tables = {t for t, _ in columns}
        # two partners × campaigns on one day, with converted revenue and one purchase without a rate
        client.command(f"""INSERT INTO {db}.daily_rollups (day, app_id, media_source, campaign, ad_set, platform,
            installs, reinstalls, signups, purchases, revenue, users, users_state, events, partner_id, partner_name,
            partner_mapped, reporting_currency, revenue_reporting, purchases_unconverted)
            SELECT today() - 1, 'com.example.shop', ms, camp, '', 'android', inst, 0, 0, pur, map(), 1,
                   arrayReduce('uniqState', [ms]), inst + pur, pid, pname, 1, 'USD', toDecimal128(rev, 6), unconv
            FROM (SELECT arrayJoin([('Facebook Ads', 'IN_Jun', 5, 2, '12.5', 0, 'meta', 'Meta'),
                                    ('facebook', 'IN_Jun', 3, 1, '4', 1, 'meta', 'Meta'),
                                    ('tiktok', 'TT_Summer', 7, 0, '0', 0, 'tiktok', 'TikTok')]) AS r,
                         r.1 AS ms, r.2 AS camp, toUInt64(r.3) AS inst, toUInt64(r.4) AS pur, r.5 AS rev,
                         toUInt64(r.6) AS unconv, r.7 AS pid, r.8 AS pname)""")
        variables = {"partner": "Meta|TikTok", "app_id": "com.example.shop"}
        for name, dash in DASHBOARDS.items():
            sqls = [(p["title"], t["rawSql"]) for p in _panels(dash) for t in p["targets"] if "rawSql" in t]
            sqls += [(v["name"], v["query"]) for v in dash["templating"]["list"]
                     if v["datasource"]["type"] != "prometheus"]
            for title, sql in sqls:
                for table in re.findall(r"\battribution\.(\w+)", sql):
                    assert table in tables, f"{name}/{title}: no table {table} after migrations"
                    named = set(re.findall(r"\b[a-z_][a-z0-9_]*\b", sql)) & {c for t, c in columns if t == table}
                    assert named, f"{name}/{title}: no column of {table} named"
                client.query(_grafana_sql(sql, db, variables))  # an unknown table or column fails here
        # the analyst dashboard reports canonical partners and converted revenue, summed as the rollups hold them
        analyst = {p["title"]: p["targets"][0]["rawSql"] for p in _panels(DASHBOARDS["analyst"])}
        assert all("partner_name" in sql for t, sql in analyst.items() if "by partner" in t.lower())
        by_pc = client.query(_grafana_sql(analyst["By partner and campaign"], db, variables)).named_results()
        got = {(r["partner"], r["campaign"]): (r["installs"], r["purchases"], float(r["revenue"]),
                                               r["purchases_without_rate"]) for r in by_pc}
        assert got == {("Meta", "IN_Jun"): (8, 3, 16.5, 1), ("TikTok", "TT_Summer"): (7, 0, 0.0, 0)}
        revenue = client.query(_grafana_sql(analyst["Revenue by partner (reporting currency)"], db,
                                            {**variables, "partner": "Meta"})).result_rows
        assert [(p, float(r)) for _, p, r in revenue] == [("Meta", 16.5)]
    finally:
        close(client)


def test_alerts_health_is_its_readiness_port(monkeypatch):
    """The alerts service is healthy once it owns the counts partition (alerts/app.py /readyz), not merely alive."""
    s = _service_settings(SERVICES["alerts"], monkeypatch)
    assert s.alerts.ready_port, "alerts /readyz is off"
    check = " ".join(SERVICES["alerts"]["healthcheck"]["test"])
    assert f"localhost:{s.alerts.ready_port}/readyz" in check
    assert s.alerts.ready_host in ("127.0.0.1", "0.0.0.0", "localhost")  # the check runs inside the container

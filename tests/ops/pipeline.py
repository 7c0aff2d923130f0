"""A whole local pipeline for fault tests and benches: `attrib run --no-traffic` on a private var dir (its own broker
or cluster on free ports, sink, worker, alerts, ingress), an open-loop signed sender that records every delivery's
answer and the event ids it must produce, and warehouse queries. Test-only (benches import it too)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrib.settings import KafkaSettings, Settings, SinkSettings, SourceSettings, StackSettings
from ops.stack import Broker, Cluster
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "dev" / "demo.toml"


def demo_sources() -> list[SourceSettings]:
    return [SourceSettings.model_validate(x) for x in tomllib.loads(DEMO.read_text())["sources"]]


def processes_of(var: Path) -> list[int]:
    """Processes whose environment carries this var dir (`attrib run`, its broker and every service inherit it)."""
    marker, found = str(var).encode(), []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                if marker in (d / "environ").read_bytes():
                    found.append(int(d.name))
            except OSError:
                continue
    return found


def service_pid(var: Path, name: str) -> int | None:
    """The pid of `attrib <name>` run by the `attrib run` on this var dir."""
    for pid in processes_of(var):
        try:
            argv = [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if argv[-2:] == [b"ops.cli", name.encode()]:
            return pid
    return None


@dataclass
class Pipeline:
    var: Path
    env: dict[str, str]
    brokers: int
    proc: subprocess.Popen[bytes] | None = None
    out: Path | None = None

    @classmethod
    def configure(cls, tmp: Path, brokers: int = 3, **settings: str) -> Pipeline:
        """``settings``: extra ATTRIB_* variables for every process, e.g. ATTRIB_KAFKA__PRODUCE_TIMEOUT_S="15"."""
        var = tmp / "var"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTRIB_")} | {
            "ATTRIB_CONFIG": str(DEMO), "ATTRIB_VAR_DIR": str(var),
            "ATTRIB_STACK__JARS_DIR": str(ROOT / "var" / "kafka" / "lib"), "ATTRIB_STACK__BROKERS": str(brokers),
            "ATTRIB_KAFKA__BOOTSTRAP_SERVERS": ",".join(f"127.0.0.1:{free_port()}" for _ in range(brokers)),
            "ATTRIB_STACK__CONTROLLER_PORT": str(free_port()),
            "ATTRIB_STACK__CONTROLLER_PORTS": "[" + ",".join(str(free_port()) for _ in range(brokers)) + "]",
            "ATTRIB_INGEST__PORT": str(free_port()), "ATTRIB_SINK__QUERY_PORT": str(free_port()),
            "ATTRIB_STREAMS__METRICS_PORT": str(free_port()), "ATTRIB_ALERTS__READY_PORT": str(free_port()),
        } | settings
        return cls(var, env, brokers)

    # -- processes ----------------------------------------------------------------------------------------------
    def start(self, timeout_s: float = 300.0) -> None:
        """`attrib run --no-traffic`, returning once it says the pipeline runs."""
        self.out = self.var.parent / "run.out"
        self.var.mkdir(parents=True, exist_ok=True)
        with self.out.open("wb") as f:
            self.proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "run", "--no-traffic"], env=self.env,
                                         cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s  # a hang guard, not a timing assertion
        while "Ctrl-C stops everything" not in self.output():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"attrib run did not come up:\n{self.output()[-4000:]}")
            time.sleep(0.5)

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out and self.out.exists() else ""

    def stop(self) -> None:
        """SIGINT as Ctrl-C; then make sure nothing of ours is left (a failed test must not leak brokers)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for pid in self.leftovers():
            os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        return processes_of(self.var)

    def service_pid(self, name: str) -> int | None:
        """The pid of `attrib <name>` under this pipeline's `attrib run`."""
        return service_pid(self.var, name)

    # -- settings as the services see them ----------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        e = self.env
        return Settings(
            var_dir=self.var,
            kafka=KafkaSettings.model_validate({"bootstrap_servers": e["ATTRIB_KAFKA__BOOTSTRAP_SERVERS"]}),
            stack=StackSettings.model_validate({
                "jars_dir": e["ATTRIB_STACK__JARS_DIR"], "brokers": self.brokers,
                "controller_port": int(e["ATTRIB_STACK__CONTROLLER_PORT"]),
                "controller_ports": [int(p) for p in e["ATTRIB_STACK__CONTROLLER_PORTS"].strip("[]").split(",")]}),
            sink=SinkSettings.model_validate({"query_port": int(e["ATTRIB_SINK__QUERY_PORT"])}),
        )

    def nodes(self) -> tuple[Broker, ...]:
        return Cluster.from_settings(self.settings, self.brokers).nodes

    def leader_of(self, topic: str, partition: int = 0) -> Broker:
        from confluent_kafka.admin import AdminClient

        md = AdminClient({"bootstrap.servers": self.env["ATTRIB_KAFKA__BOOTSTRAP_SERVERS"]}).list_topics(timeout=30)
        leader = md.topics[topic].partitions[partition].leader
        return next(b for b in self.nodes() if b.node_id == leader)

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.env['ATTRIB_INGEST__PORT']}"

    # -- the warehouse (through the sink's query port) ----------------------------------------------------------
    def rows(self, sql: str) -> list[dict[str, Any]]:
        return sink_rows(int(self.env["ATTRIB_SINK__QUERY_PORT"]), sql)

    def event_count(self) -> int:
        """Rows in events now; -1 while the sink (which serves queries) is down or restarting."""
        try:
            return int(self.rows("SELECT count() AS n FROM attribution.events")[0]["n"])
        except (OSError, ValueError):  # not answering yet (down, restarting, starting up): callers poll
            return -1


def sink_rows(query_port: int, sql: str) -> list[dict[str, Any]]:
    """Rows through the running sink's query port only. (`attrib sql` opens the embedded warehouse itself when no sink
    answers — from a long-lived test process that would hold its lock and keep a restarted sink from starting.)"""
    import json
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{query_port}/sql?format=json", data=sql.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]


# -- traffic ---------------------------------------------------------------------------------------------------
@dataclass
class Sent:
    """One delivery: the answer it got, how long that took, and the event ids it must become."""

    source: str
    event_ids: frozenset[str]
    at: float = 0.0  # seconds after the start of sending
    status: str = ""
    seconds: float = 0.0
    stored_as: str = ""  # the 2xx answer's "status": stored (Kafka acked) or spooled (fsync'd to the local spool)

    @property
    def acknowledged(self) -> bool:
        return self.status.startswith("2")


@dataclass
class Traffic:
    sent: list[Sent] = field(default_factory=list)

    @property
    def acknowledged(self) -> list[Sent]:
        return [d for d in self.sent if d.acknowledged]

    @property
    def refused(self) -> list[Sent]:
        return [d for d in self.sent if not d.acknowledged]

    def statuses(self) -> Counter[str]:
        return Counter(d.status for d in self.sent)

    def longest(self) -> float:
        return max((d.seconds for d in self.sent), default=0.0)

    def percentile(self, q: float) -> float:
        times = sorted(d.seconds for d in self.sent)
        return times[min(len(times) - 1, int(q * len(times)))] if times else 0.0


def installs(per_source: int, seed: int = 7) -> list[tuple[SourceSettings, Any, frozenset[str]]]:
    """Install deliveries of fresh users, round-robin over the demo sources, with the event ids each must produce
    (by the normalizer the worker runs). Installs only: a later event whose install was refused would wait for it
    (by design), which is not what a broker-kill test measures."""
    from ops.traffic import deliveries, signing
    from schemas.normalize import normalize

    groups = []
    for i, src in enumerate(demo_sources()):
        plan = [p for p in deliveries.plan(src, per_source * 4, seed=seed + i) if p.event_type in
                deliveries.INSTALL_TYPES][:per_source]
        group = []
        for p in plan:
            out = p.out
            signing.sign(src, out, time.time())
            raw = {"delivery_id": "x", "source": src.name, "mmp": src.mmp, "app_id": src.app_id,
                   "method": out.method, "path": out.path, "query_string": signing.query_string(out),
                   "headers": {k.lower(): v for k, v in out.headers.items()}, "body": out.body,
                   "remote_addr": "127.0.0.1", "received_at": int(time.time() * 1000), "user_key": ""}
            group.append((src, out, frozenset(str(e["event_id"]) for e in normalize(src, raw))))
        groups.append(group)
    return [x for row in zip(*groups, strict=False) for x in row]


async def send_open_loop(base_url: str, planned: list[tuple[SourceSettings, Any, frozenset[str]]], rate: float,
                         timeout_s: float = 60.0, on_tick: Any = None) -> Traffic:
    """Each delivery leaves at its scheduled time whatever the ones before it are waiting for (as MMPs send: a slow
    answer does not slow the next delivery). ``on_tick(elapsed_s)`` runs every 0.25 s in the sender's loop (for
    faults injected at a point of the traffic)."""
    import aiohttp
    import yarl

    from ops.traffic import signing

    traffic = Traffic()
    start = time.monotonic()

    async def one(i: int, src: SourceSettings, out: Any, ids: frozenset[str]) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        d = Sent(src.name, ids, at=time.monotonic() - start)
        traffic.sent.append(d)
        t0 = time.monotonic()
        try:
            async with session.request(out.method, yarl.URL(signing.url(base_url, out), encoded=True),
                                       data=out.body or None, headers=out.headers,
                                       skip_auto_headers=("Content-Type",)) as r:
                answer = await r.read()
                d.status = str(r.status)
                if r.status < 300:
                    d.stored_as = json.loads(answer).get("status", "")
        except (TimeoutError, aiohttp.ClientError) as exc:
            d.status = type(exc).__name__
        d.seconds = time.monotonic() - t0

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.25)
            if on_tick is not None:
                await asyncio.to_thread(on_tick, time.monotonic() - start)

    conn = aiohttp.TCPConnector(limit=2000)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        tick = asyncio.create_task(ticker())
        await asyncio.gather(*(one(i, *p) for i, p in enumerate(planned)))
        if tick.done():  # the fault injection failed (e.g. the killed broker did not come back): say why
            tick.result()
        tick.cancel()
    return traffic


def settle(p: Pipeline, want: set[str], guard_s: float = 240.0) -> dict[str, int]:
    """Poll until every wanted event id is in events FINAL (or the hang guard ends); the FINAL count per event id
    of the wanted ones."""
    deadline = time.monotonic() + guard_s
    counts: dict[str, int] = {}
    while True:
        try:
            rows = p.rows("SELECT event_id, count() AS n FROM attribution.events FINAL GROUP BY event_id")
            counts = {r["event_id"]: int(r["n"]) for r in rows if r["event_id"] in want}
        except (OSError, ValueError):  # the sink may be restarting
            pass
        if len(counts) == len(want) or time.monotonic() > deadline:
            return counts
        time.sleep(2)


# -- scenarios (the tests and bench/faults.py) ----------------------------------------------------------------
RATE = 100.0  # deliveries/s, open loop
SECONDS = 30.0
KILL_AT, RESTART_AT = 8.0, 18.0  # seconds into the traffic


def broker_kill_run(tmp: Path, seconds: float = SECONDS, kill_at: float = KILL_AT, restart_at: float = RESTART_AT,
                    **settings: str) -> tuple[Traffic, dict[str, int], dict[str, Any]]:
    """One broker of three SIGKILLed at ``kill_at`` s into ``seconds`` of traffic, restarted at ``restart_at``. Returns
    the traffic, FINAL counts of the acknowledged deliveries' event ids, and facts about the fault."""
    p = Pipeline.configure(tmp, brokers=3, **settings)
    facts: dict[str, Any] = {}
    try:
        p.start()
        victim = p.leader_of("attrib.raw-deliveries", 0)  # it leads a third of every topic's partitions
        facts["victim"] = victim.node_id

        def fault(elapsed: float) -> None:
            if elapsed >= kill_at and "killed_at" not in facts:
                pid = victim.pid()
                assert pid is not None
                os.kill(pid, signal.SIGKILL)
                facts["killed_at"] = elapsed
            elif elapsed >= restart_at and "killed_at" in facts and "restarted_at" not in facts:
                facts["restarted_at"] = elapsed
                t0 = time.monotonic()
                victim.start(log=lambda *_: None)
                facts["restart_took_s"] = round(time.monotonic() - t0, 1)

        planned = installs(int(RATE * seconds) // 5)
        traffic = asyncio.run(send_open_loop(p.ingest_url, planned, RATE, on_tick=fault))
        want = set().union(*(d.event_ids for d in traffic.acknowledged))
        counts = settle(p, want)
        facts["raw_rows"] = p.rows("SELECT count() AS n FROM attribution.events")[0]["n"]
        facts["supervisor"] = [line for line in p.output().splitlines() if "restarting in" in line]
        return traffic, counts, facts
    finally:
        p.stop()
        assert not p.leftovers()


def summary(traffic: Traffic, counts: dict[str, int], facts: dict[str, Any]) -> dict[str, Any]:
    acked = traffic.acknowledged
    want = set().union(*(d.event_ids for d in acked)) if acked else set()
    refused = traffic.refused
    return {
        "sent": len(traffic.sent), "acknowledged": len(acked), "refused": len(refused),
        "statuses": dict(traffic.statuses()),
        "refused_between_s": [round(min(d.at for d in refused), 1), round(max(d.at for d in refused), 1)]
        if refused else None,
        "longest_answer_s": round(traffic.longest(), 2), "p99_answer_s": round(traffic.percentile(0.99), 2),
        "spooled": sum(1 for d in acked if d.stored_as == "spooled"),
        "events_wanted": len(want), "events_found": len(counts),
        "lost": len(want - counts.keys()), "duplicated": sum(1 for n in counts.values() if n > 1),
        **facts,
    }




def sink_kill_run(tmp: Path, kills: int = 1, rate: float = 50.0, **settings: str) -> tuple[Traffic, dict[str, int],
                                                                                           dict[str, Any]]:
    """The sink SIGKILLed mid-load (`attrib run` restarts it), ``kills`` times: for each, the seconds from the kill
    until the restarted sink answers queries and until it loads new rows again (restart-to-resume)."""
    p = Pipeline.configure(tmp, brokers=1, **settings)
    facts: dict[str, Any] = {"resumes": []}
    state: dict[str, Any] = {"next_kill": 10.0}
    try:
        p.start()

        def fault(elapsed: float) -> None:
            if "killed" not in state:
                if elapsed >= state["next_kill"] and len(facts["resumes"]) < kills:
                    pid = p.service_pid("sink")
                    assert pid is not None
                    os.kill(pid, signal.SIGKILL)
                    state.update(killed=time.monotonic(), answering=None, base=None)
                return
            n = p.event_count()
            if n < 0:
                return
            now = time.monotonic()
            if state["base"] is None:
                state.update(base=n, answering=now - state["killed"])
            elif n > state["base"]:
                facts["resumes"].append({"answers_after_s": round(state["answering"], 1),
                                         "loads_again_after_s": round(now - state["killed"], 1)})
                state.clear()
                state["next_kill"] = elapsed + 10.0

        # long enough for every kill to resume even after a 45 s session timeout, with margin
        planned = installs(int(rate * (15 + 60 * kills)) // 5)
        traffic = asyncio.run(send_open_loop(p.ingest_url, planned, rate, on_tick=fault))
        want = set().union(*(d.event_ids for d in traffic.acknowledged))
        counts = settle(p, want)
        facts["supervisor"] = [line for line in p.output().splitlines() if "restarting in" in line]
        return traffic, counts, facts
    finally:
        p.stop()

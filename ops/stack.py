"""The local stack: real Apache Kafka (KRaft, combined broker+controller nodes) run from Maven Central jars.

`attrib stack up` resolves the jars once (cached in settings.stack.jars_dir), formats storage on first start, starts
the JVMs detached, and returns only when every node answers metadata requests. One node lives in <var_dir>/kafka;
a cluster of N (`--brokers N`: a static controller quorum of all N, replication factor min(3, N), min ISR RF-1) in
<var_dir>/kafka/cluster-N/node-I. ClickHouse needs no process here: the embedded engine runs inside whichever process
opens it.

Start-up time is CPU on a shared 2-core machine: every JVM runs C1 + the serial collector and maps a class-data archive
built once next to the jars (`class_archive`); a new cluster runs the storage tool once (`Broker.format_like`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attrib.errors import AttribError
from attrib.settings import Settings

MAIN_CLASS = "kafka.Kafka"


class StackError(AttribError):
    pass


def fetch_jars(settings: Settings, log=print) -> Path:
    """Resolve the broker's runtime classpath from Maven Central via the committed pom (cached by pom hash)."""
    jars, pom = settings.stack.jars_dir, settings.stack.pom
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    marker = jars / ".pom-sha256"
    if marker.is_file() and marker.read_text() == digest:
        class_archive(jars, log)
        return jars
    if not shutil.which("mvn") or not shutil.which("java"):
        raise StackError("Maven (mvn) and Java 17 are needed to fetch the Kafka broker; install them and retry")
    log(f"resolving Kafka broker jars from Maven Central ({pom.name}) ...")
    jars.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lib-", dir=jars.parent))
    cmd = ["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError("mvn could not resolve the broker jars:\n" + (proc.stdout + proc.stderr)[-4000:])
    (tmp / ".pom-sha256").write_text(digest)
    shutil.rmtree(jars, ignore_errors=True)
    tmp.rename(jars)  # atomic swap: a half-fetched lib dir is never used
    class_archive(jars, log)
    return jars


# -- JVM start-up: a broker JVM spends most of its start loading and verifying classes ----------------------------


def classpath(jars: Path) -> str:
    """The jars in a fixed order (a class-data archive is valid only for the exact classpath it was built with)."""
    return os.pathsep.join(str(p) for p in sorted(jars.glob("*.jar")))


def jvm_options(jars: Path, jit: str = "c1") -> list[str]:
    """Flags for every JVM of the stack (broker and storage tool). ``jit="c1"`` (C1 only) with the serial collector:
    on a loaded 2-core machine C2 and G1 cost ~40% of a start's CPU, which tests (many short-lived brokers) and
    `make run` feel; but under sustained load a C1-only broker spends ~1.7x the CPU per record (bench/e2e.py at
    ~960/s: 0.80 vs 0.46 ms per delivery), so load measurements use ``"full"``. The class-data archive (AppCDS),
    when built, takes another ~40% of the start: its classes are mapped, not parsed and verified."""
    archive = _archive_path(jars)
    shared = [f"-XX:SharedArchiveFile={archive}"] if archive is not None and archive.is_file() else []
    tier = ["-XX:TieredStopAtLevel=1"] if jit == "c1" else []
    return [*tier, "-XX:+UseSerialGC", "-Xshare:auto", *shared]


def _archive_path(jars: Path) -> Path | None:
    """Where the archive for these jars and this JDK lives: a JDK update (new binary) means a new archive. The jars
    directory is replaced whole when the pom changes, and the archive with it."""
    java = shutil.which("java")
    if java is None:
        return None
    real = Path(java).resolve()
    st = real.stat()
    key = hashlib.sha256(f"{real}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return jars / f"kafka-{key}.jsa"


def class_archive(jars: Path, log=print) -> Path | None:
    """The broker's class-data archive next to the jars, built once by a training start (a throwaway single node that
    dumps the classes it loaded when it exits). None when it cannot be built: starts are only slower then, and a
    failed build (noted in a .failed file) is not retried for the same jars and JDK."""
    import fcntl

    archive = _archive_path(jars)
    if archive is None or archive.is_file():
        return archive
    failed = archive.with_suffix(".failed")
    if failed.is_file():
        return None
    with open(jars / ".archive.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent first starts (tests, benches) build it once
        if archive.is_file() or failed.is_file():
            return archive if archive.is_file() else None
        log("building the broker's class-data archive (once per jars and JDK) ...")
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=".archive-", dir=jars.parent) as tmp:
            dump = Path(tmp) / "kafka.jsa"
            trainer = Broker(Path(tmp) / "node", jars, "127.0.0.1", _free_port(), _free_port(), "-Xmx512m", 120.0)
            quiet = lambda *_: None  # noqa: E731 - the trainer's own lifecycle lines mean nothing to the user
            try:
                trainer.write_config()
                trainer.format_storage()
                proc = trainer.spawn([f"-XX:ArchiveClassesAtExit={dump}"])
                trainer.wait_up(proc, time.monotonic() + trainer.start_timeout, quiet)
                trainer.stop(quiet, timeout=60)  # the JVM writes the archive as it exits
                if not dump.is_file():
                    raise StackError(f"the JVM wrote no archive; last lines of its log:\n{trainer._tail()}")
            except StackError as e:
                trainer.stop(quiet)
                failed.write_text(str(e))
                log(f"class-data archive not built (starts will be slower): {e}")
                return None
            os.replace(dump, archive)
        log(f"class-data archive built in {time.monotonic() - t0:.0f}s: {archive}")
        return archive


@dataclass(frozen=True)
class Broker:
    """A broker whose files live in ``home`` (pid, log, config, data)."""

    home: Path
    jars: Path
    host: str
    port: int
    controller_port: int
    heap: str
    start_timeout: float = 90.0
    node_id: int = 1
    voters: str = ""  # controller.quorum.voters of a cluster ("1@host:port,…"); "" = a single self-bootstrapped node
    cluster_id: str = ""  # shared by every node of a cluster; "" = a fresh one when formatting
    replication: int = 1  # replication factor of internal topics; min ISR is one less (at least 1)
    jit: str = "c1"  # stack.jit: see jvm_options

    @classmethod
    def from_settings(cls, s: Settings) -> Broker:
        host, _, port = s.kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
        return cls(s.var_dir / "kafka", s.stack.jars_dir, host, int(port), s.stack.controller_port, s.stack.heap,
                   s.stack.start_timeout_s, jit=s.stack.jit)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    # -- process state ------------------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The pid of *our* running broker, or None (stale pid files and reused pids are ignored)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        if MAIN_CLASS.encode() in cmdline and str(self.config_file).encode() in cmdline:
            return pid
        return None

    def answers(self, timeout: float = 2.0, brokers: int = 1) -> bool:
        """True when the broker answers a metadata request listing at least ``brokers`` live brokers (not merely an
        open port)."""
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        # librdkafka logs connection-refused noise while we poll for readiness: to a logger that drops it
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, "socket.timeout.ms": int(timeout * 1000),
                                "log_level": 0, "logger": _QUIET}
        try:
            md = AdminClient(conf).list_topics(timeout=timeout)
        except KafkaException:
            return False
        return len(md.brokers) >= max(1, brokers)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.home / "server.properties"

    def write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(_server_properties(self))
        (self.home / "log4j2.properties").write_text(_LOG4J)

    def format_storage(self) -> bool:
        """Format KRaft storage if this is the first start; returns True when it formatted."""
        if (self.data_dir / "meta.properties").is_file():
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = self.cluster_id or _kafka_uuid()
        # a static quorum (voters listed in the config) needs no initial-controller flag; a lone node bootstraps itself
        quorum = [] if self.voters else ["--standalone"]
        proc = subprocess.run(
            ["java", *jvm_options(self.jars, self.jit), "-cp", classpath(self.jars),
             "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "-c", str(self.config_file), *quorum],
            check=False, capture_output=True, text=True, env=self._env(),
        )
        if proc.returncode != 0:
            raise StackError("formatting Kafka storage failed:\n" + (proc.stdout + proc.stderr)[-4000:])
        return True

    def format_like(self, peer: Broker) -> bool:
        """Format this node's storage as the storage tool formatted ``peer``'s, without a JVM: in a static quorum the
        bootstrap metadata (feature levels, cluster configs) names no node, so a node's storage is the peer's
        ``bootstrap.checkpoint`` plus its own ``meta.properties`` (its node id, a fresh directory id). Returns True
        when it formatted (False: formatted already)."""
        if (self.data_dir / "meta.properties").is_file():
            return False
        if not (self.voters and peer.voters == self.voters and peer.cluster_id == self.cluster_id):
            raise StackError(f"kafka{self.label}: only a node of the same static quorum can lend its storage format")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(peer.data_dir / "bootstrap.checkpoint", self.data_dir / "bootstrap.checkpoint")
        meta = dict(line.split("=", 1) for line in (peer.data_dir / "meta.properties").read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
        meta |= {"node.id": str(self.node_id), "directory.id": _kafka_uuid()}
        tmp = self.data_dir / "meta.properties.tmp"
        tmp.write_text("".join(f"{k}={v}\n" for k, v in meta.items()))
        tmp.rename(self.data_dir / "meta.properties")  # last: its presence is what "formatted" means
        return True

    def start(self, log=print) -> None:
        """Start this node and wait until it answers (a cluster node needs a quorum: start its peers with Cluster)."""
        proc = self.launch(log)
        if proc is not None:
            self.wait_up(proc, time.monotonic() + self.start_timeout, log)

    def launch(self, log=print) -> subprocess.Popen[bytes] | None:
        """Start the JVM detached without waiting; None when this node already runs and answers."""
        if not self.prepare(log):
            return None
        if self.format_storage():
            log(f"formatted new KRaft storage in {self.data_dir}")
        return self.spawn()

    def prepare(self, log=print) -> bool:
        """Checks and config before a start; False when this node already runs and answers."""
        if self.pid():
            if self._wait_ready(10):
                log(f"kafka{self.label} already running (pid {self.pid()}) on {self.bootstrap}")
                return False
            raise StackError(f"kafka{self.label} pid {self.pid()} runs but does not answer on {self.bootstrap}; "
                             f"see {self.log_file}")
        self.check_ports()
        self.write_config()
        return True

    def check_ports(self) -> None:
        for port in (self.port, self.controller_port):
            if _port_open(self.host, port):
                raise StackError(f"{self.host}:{port} is already taken by another process; stop it or set "
                                 "ATTRIB_KAFKA__BOOTSTRAP_SERVERS / ATTRIB_STACK__CONTROLLER_PORT(S) to free ports")

    def spawn(self, extra: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """Start the JVM detached (``extra``: more JVM flags)."""
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                ["java", *self.heap.split(), *jvm_options(self.jars, self.jit), *extra, "-Djava.awt.headless=true",
                 f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}", f"-Dkafka.logs.dir={self.home}",
                 "-cp", classpath(self.jars), MAIN_CLASS, str(self.config_file)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env(),
                start_new_session=True,  # survives the CLI; `stack down` stops it
            )
        self.pid_file.write_text(str(proc.pid))
        return proc

    def wait_up(self, proc: subprocess.Popen[bytes], deadline: float, log=print, brokers: int = 1) -> None:
        """Wait until the node answers metadata listing ``brokers`` registered brokers; stop it on failure."""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StackError(f"kafka{self.label} exited with code {proc.returncode}; last lines of "
                                 f"{self.log_file}:\n{self._tail()}")
            if self.answers(1.0, brokers):
                log(f"kafka{self.label} up (pid {proc.pid}) on {self.bootstrap}")
                return
            time.sleep(0.25)
        self.stop(log=lambda *_: None)
        raise StackError(f"kafka{self.label} did not answer within {self.start_timeout:.0f}s; last lines of "
                         f"{self.log_file}:\n{self._tail()}")

    @property
    def label(self) -> str:
        return f" node {self.node_id}" if self.voters else ""

    def stop(self, log=print, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            log(f"kafka{self.label} not running")
            return
        os.kill(pid, signal.SIGTERM)  # controlled shutdown
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        log(f"kafka{self.label} stopped (pid {pid})")

    # -- helpers ------------------------------------------------------------------------------------------------
    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.answers(1.0):
                return True
            time.sleep(0.25)
        return False

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("CLASSPATH", None)
        return env

    def _tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass(frozen=True)
class Cluster:
    """The local stack's nodes: one Broker, or N combined nodes forming one static controller quorum."""

    nodes: tuple[Broker, ...]

    @classmethod
    def from_settings(cls, s: Settings, brokers: int | None = None) -> Cluster:
        """``brokers`` nodes (default: as many as the last `stack up` started, else settings.stack.brokers). Node I
        listens on the I-th host:port of kafka.bootstrap_servers (or the first port + 2·(I-1)) and on the I-th of
        stack.controller_ports (or stack.controller_port + 2·(I-1))."""
        n = brokers or _last_up(s) or s.stack.brokers
        if n == 1:
            return cls((Broker.from_settings(s),))
        entries = [hp.strip().rpartition(":") for hp in s.kafka.bootstrap_servers.split(",")]
        host = entries[0][0]
        ports = ([int(p) for _, _, p in entries] if len(entries) >= n
                 else [int(entries[0][2]) + 2 * i for i in range(n)])[:n]
        cports = (list(s.stack.controller_ports) if len(s.stack.controller_ports) >= n
                  else [s.stack.controller_port + 2 * i for i in range(n)])[:n]
        taken = [p for p in ports + cports if (ports + cports).count(p) > 1]
        if taken:
            raise StackError(f"port {taken[0]} is both a broker and a controller port: list {n} broker ports in "
                             "ATTRIB_KAFKA__BOOTSTRAP_SERVERS and other ones in ATTRIB_STACK__CONTROLLER_PORTS")
        home = s.var_dir / "kafka" / f"cluster-{n}"
        voters = ",".join(f"{i + 1}@{host}:{cp}" for i, cp in enumerate(cports))
        cluster_id = _cluster_id(home)
        return cls(tuple(Broker(home / f"node-{i + 1}", s.stack.jars_dir, host, ports[i], cports[i], s.stack.heap,
                                s.stack.start_timeout_s, node_id=i + 1, voters=voters, cluster_id=cluster_id,
                                replication=min(3, n), jit=s.stack.jit)
                         for i in range(n)))

    @property
    def bootstrap(self) -> str:
        """What clients should use: every node, so a client (re)started while one node is down still connects."""
        return ",".join(b.bootstrap for b in self.nodes)

    @property
    def replication(self) -> int:
        return self.nodes[0].replication

    def start(self, log=print) -> None:
        """Start every node at once (no node answers before a quorum of controllers runs), then wait for all."""
        self.wait(self.launch(log), log)

    def launch(self, log=print) -> list[tuple[Broker, subprocess.Popen[bytes]]]:
        """Format (first start) and spawn every node that isn't running; returns at once with the started ones, for
        `wait` (the caller may do other work while the JVMs start)."""
        todo = [b for b in self.nodes if b.prepare(log)]
        fresh = [b for b in todo if not (b.data_dir / "meta.properties").is_file()]
        if fresh:  # one storage-tool JVM for the first new node; the others copy its format (see format_like)
            fresh[0].format_storage()
            for b in fresh[1:]:
                b.format_like(fresh[0])
            for b in fresh:
                log(f"formatted new KRaft storage in {b.data_dir}")
        started: list[tuple[Broker, subprocess.Popen[bytes]]] = []
        try:
            for b in todo:
                started.append((b, b.spawn()))
        except OSError as e:  # no half-started cluster: stop the nodes that did start
            self.stop(log=lambda *_: None)
            raise StackError(f"could not start kafka{b.label}: {e}") from None
        return started

    def wait(self, procs: list[tuple[Broker, subprocess.Popen[bytes]]], log=print) -> None:
        """Wait until every launched node answers metadata listing all nodes; stop the cluster if one can't."""
        deadline = time.monotonic() + self.nodes[0].start_timeout
        try:
            for b, proc in procs:
                b.wait_up(proc, deadline, log, brokers=len(self.nodes))
        except StackError:
            self.stop(log=lambda *_: None)
            raise
        _remember(self)

    def stop(self, log=print, timeout: float = 30.0) -> None:
        """SIGTERM every node at once: stopped one by one, the last ones lose their quorum and wait it out."""
        pids = self.running()
        for b, pid in pids:
            if pid is None:
                b.pid_file.unlink(missing_ok=True)
                log(f"kafka{b.label} not running")
            else:
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for b, pid in pids:
            if pid is None:
                continue
            if not _wait_gone(pid, max(0.0, deadline - time.monotonic())):
                os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, 5)
            b.pid_file.unlink(missing_ok=True)
            log(f"kafka{b.label} stopped (pid {pid})")

    def running(self) -> list[tuple[Broker, int | None]]:
        return [(b, b.pid()) for b in self.nodes]

    def topic_settings(self, s: Settings) -> Settings:
        """``s`` with the replication factor this cluster gives the topics it creates (never lower than configured)."""
        rf = max(s.topics.replication_factor, self.replication)
        return s.model_copy(update={"topics": s.topics.model_copy(update={"replication_factor": rf})})


def _cluster_id(home: Path) -> str:
    """One id for every node of a cluster, kept beside them so a later `stack up` re-formats nobody differently."""
    f = home / "cluster.id"
    if not f.is_file():
        home.mkdir(parents=True, exist_ok=True)
        f.write_text(_kafka_uuid())
    return f.read_text().strip()


def _layout_file(s: Settings) -> Path:
    return s.var_dir / "kafka" / "brokers"


def _last_up(s: Settings) -> int | None:
    try:
        return int(_layout_file(s).read_text())
    except (OSError, ValueError):
        return None


def _remember(c: Cluster) -> None:
    """Which layout runs, so `stack down` / `stack status` without --brokers find it."""
    base = c.nodes[0].home if len(c.nodes) == 1 else c.nodes[0].home.parent.parent
    (base / "brokers").write_text(str(len(c.nodes)))


def _kafka_uuid() -> str:
    import base64

    # like Kafka's Uuid.randomUuid(): URL-safe base64; may start with "-", hence --cluster-id=<id> when formatting
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # a zombie child (when we started it in this process) counts as gone
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                os.waitpid(pid, os.WNOHANG)
                return True
        except (OSError, ChildProcessError, IndexError):
            return True
        time.sleep(0.1)
    return False


_QUIET = logging.getLogger("attrib.stack.probe")
_QUIET.setLevel(logging.CRITICAL)
_QUIET.propagate = False


def _server_properties(b: Broker) -> str:
    rf, isr = b.replication, max(1, b.replication - 1)
    quorum = (f"controller.quorum.voters={b.voters}" if b.voters
              else f"controller.quorum.bootstrap.servers={b.host}:{b.controller_port}")
    return f"""# generated by `attrib stack up`; edit dev/kafka or settings instead
process.roles=broker,controller
node.id={b.node_id}
{quorum}
listeners=PLAINTEXT://{b.host}:{b.port},CONTROLLER://{b.host}:{b.controller_port}
advertised.listeners=PLAINTEXT://{b.host}:{b.port},CONTROLLER://{b.host}:{b.controller_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={b.data_dir}
num.partitions=12
default.replication.factor={rf}
min.insync.replicas={isr}
offsets.topic.replication.factor={rf}
offsets.topic.num.partitions=12
transaction.state.log.replication.factor={rf}
transaction.state.log.min.isr={isr}
share.coordinator.state.topic.replication.factor={rf}
share.coordinator.state.topic.min.isr={isr}
# loopback: a first start elects its controller leader sooner (defaults 1000 ms each); a follower still waits the
# default fetch timeout (2 s) before it calls a leader dead, so a busy machine doesn't cause extra elections
controller.quorum.election.timeout.ms=500
controller.quorum.election.backoff.max.ms=500
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=168
num.network.threads=2
num.io.threads=4
"""


_LOG4J = """status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka.server.KafkaRaftServer
logger.kafka.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
# "Connection to node N could not be established" every few hundred ms while a peer starts or is down
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = ERROR
"""

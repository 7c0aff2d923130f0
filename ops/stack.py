"""The local stack: one real Apache Kafka broker (KRaft, combined broker+controller) run from Maven Central jars.

`attrib stack up` resolves the jars once (cached in settings.stack.jars_dir), formats storage on first start, starts
the JVM detached, and returns only when the broker answers metadata requests. State lives under <var_dir>/kafka.
ClickHouse needs no process here: the embedded engine runs inside whichever process opens it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

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
        return jars
    if not shutil.which("mvn") or not shutil.which("java"):
        raise StackError("Maven (mvn) and Java 17 are needed to fetch the Kafka broker; install them and retry")
    log(f"resolving Kafka broker jars from Maven Central ({pom.name}) ...")
    jars.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lib-", dir=jars.parent))
    cmd = ["mvn", "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
           "-DincludeScope=runtime", f"-DoutputDirectory={tmp}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StackError("mvn could not resolve the broker jars:\n" + (proc.stdout + proc.stderr)[-4000:])
    (tmp / ".pom-sha256").write_text(digest)
    shutil.rmtree(jars, ignore_errors=True)
    tmp.rename(jars)  # atomic swap: a half-fetched lib dir is never used
    return jars


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

    @classmethod
    def from_settings(cls, s: Settings) -> Broker:
        host, _, port = s.kafka.bootstrap_servers.split(",")[0].strip().rpartition(":")
        return cls(s.var_dir / "kafka", s.stack.jars_dir, host, int(port), s.stack.controller_port, s.stack.heap,
                   s.stack.start_timeout_s)

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

    def answers(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request (not merely an open port)."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": int(timeout * 1000),
                             "log_level": 0, "logger": _quiet})
        try:
            md = admin.list_topics(timeout=timeout)
            return bool(md.brokers)
        except Exception:
            return False

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
        cluster_id = _kafka_uuid()
        proc = subprocess.run(
            ["java", "-cp", f"{self.jars}/*", "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
             "-c", str(self.config_file), "--standalone"],
            capture_output=True, text=True, env=self._env(),
        )
        if proc.returncode != 0:
            raise StackError("formatting Kafka storage failed:\n" + (proc.stdout + proc.stderr)[-4000:])
        return True

    def start(self, log=print) -> None:
        if self.pid():
            if self._wait_ready(10):
                log(f"kafka already running (pid {self.pid()}) on {self.bootstrap}")
                return
            raise StackError(f"kafka pid {self.pid()} runs but does not answer on {self.bootstrap}; see {self.log_file}")
        if _port_open(self.host, self.port):
            raise StackError(f"{self.bootstrap} is already taken by another process; stop it or set "
                             "ATTRIB_KAFKA__BOOTSTRAP_SERVERS to a free port")
        self.write_config()
        if self.format_storage():
            log(f"formatted new KRaft storage in {self.data_dir}")
        with open(self.log_file, "ab") as out:
            proc = subprocess.Popen(
                ["java", *self.heap.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
                 f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}", f"-Dkafka.logs.dir={self.home}",
                 "-cp", f"{self.jars}/*", MAIN_CLASS, str(self.config_file)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env(),
                start_new_session=True,  # survives the CLI; `stack down` stops it
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise StackError(f"kafka exited with code {proc.returncode}; last log lines:\n{self._tail()}")
            if self.answers(1.0):
                log(f"kafka up (pid {proc.pid}) on {self.bootstrap}")
                return
            time.sleep(0.25)
        self.stop()
        raise StackError(f"kafka did not answer within {self.start_timeout:.0f}s; last log lines:\n{self._tail()}")

    def stop(self, log=print, timeout: float = 30.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            log("kafka not running")
            return
        os.kill(pid, signal.SIGTERM)  # controlled shutdown
        if not _wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5)
        self.pid_file.unlink(missing_ok=True)
        log(f"kafka stopped (pid {pid})")

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


def _kafka_uuid() -> str:
    import base64

    # like Kafka's Uuid.randomUuid(): URL-safe base64; may start with "-", hence --cluster-id=<id> when formatting
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


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


class _Quiet:
    """librdkafka logger that swallows connection-refused noise while we poll for readiness."""

    def log(self, *a, **k) -> None:
        pass

    def __getattr__(self, name):
        return lambda *a, **k: None


_quiet = _Quiet()


def _server_properties(b: Broker) -> str:
    return f"""# generated by `attrib stack up`; edit dev/kafka or settings instead
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={b.host}:{b.controller_port}
listeners=PLAINTEXT://{b.host}:{b.port},CONTROLLER://{b.host}:{b.controller_port}
advertised.listeners=PLAINTEXT://{b.host}:{b.port},CONTROLLER://{b.host}:{b.controller_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs={b.data_dir}
num.partitions=12
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
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
"""

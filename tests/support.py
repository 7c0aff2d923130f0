"""Helpers for tests and benchmarks (production never imports this module): throwaway brokers, free ports, /proc
readings."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass, fields
from pathlib import Path

from attrib.settings import KafkaSettings, Settings, StackSettings
from ops.stack import Broker, fetch_jars


def free_port() -> int:
    """A loopback port free right now (for child services, tests and benchmarks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (0 when it is gone)."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def given_or_throwaway(bootstrap: str | None, home: Path) -> tuple[Broker | None, str]:
    """The benchmarks' ``--bootstrap``: that broker if given, else a throwaway one under ``home`` (the caller stops
    the returned Broker; None when it was given)."""
    if bootstrap:
        return None, bootstrap
    broker = throwaway_broker(home)
    return broker, broker.bootstrap


def throwaway_broker(home: Path) -> Broker:
    """A started broker on free ports with its files under ``home``, for tests and benchmarks (``stop()`` it after)."""
    s = Settings(var_dir=home, kafka=KafkaSettings.model_validate({"bootstrap_servers": f"127.0.0.1:{free_port()}"}),
                 stack=StackSettings.model_validate({"controller_port": free_port()}))
    fetch_jars(s)
    broker = Broker.from_settings(s)
    broker.start(log=lambda *_: None)
    return broker


# --- a broker with secured listeners (SASL_SSL SCRAM and mTLS) -------------------------------------------------------

SCRAM_USER, SCRAM_PASSWORD = "attrib-app", "s3cret-Scram-512"
_STORE_PASSWORD = "changeit"


@dataclass(frozen=True)
class Tls:
    """A throwaway certificate authority with a broker certificate (for 127.0.0.1 / localhost) and a client one."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def broker_p12(self) -> Path:
        return self.dir / "broker.p12"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client.key"

    @classmethod
    def generate(cls, directory: Path) -> Tls:
        directory.mkdir(parents=True, exist_ok=True)
        t = cls(directory)

        def ssl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=attrib-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        for name, ext in (("broker", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                          ("client", "extendedKeyUsage=clientAuth")):
            (directory / f"{name}.ext").write_text(ext + "\n")
            ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=attrib-{name}")
            ssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
        ssl("pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
            "-out", "broker.p12", "-passout", f"pass:{_STORE_PASSWORD}")
        return t


@dataclass(frozen=True)
class SecureBroker(Broker):
    """The stack's broker plus two listeners: SASL_SSL (SCRAM-SHA-512/256, server TLS) and MTLS (TLS with a required
    client certificate). Its plain listener stays for the broker's own readiness probe and test set-up only."""

    sasl_port: int = 0
    mtls_port: int = 0
    tls: Tls | None = None

    @property
    def sasl_bootstrap(self) -> str:
        return f"{self.host}:{self.sasl_port}"

    @property
    def mtls_bootstrap(self) -> str:
        return f"{self.host}:{self.mtls_port}"

    def write_config(self) -> None:
        super().write_config()
        assert self.tls is not None
        h, store = self.host, _STORE_PASSWORD
        keystore = "\n".join(f"listener.name.{name}.{k}={v}" for name in ("sasl_ssl", "mtls") for k, v in (
            ("ssl.keystore.type", "PKCS12"), ("ssl.keystore.location", self.tls.broker_p12),
            ("ssl.keystore.password", store), ("ssl.key.password", store)))
        extra = f"""
# secured listeners (tests/support.py SecureBroker); later keys override the ones above
listeners=PLAINTEXT://{h}:{self.port},CONTROLLER://{h}:{self.controller_port},SASL_SSL://{h}:{self.sasl_port},MTLS://{h}:{self.mtls_port}
advertised.listeners=PLAINTEXT://{h}:{self.port},SASL_SSL://{h}:{self.sasl_port},MTLS://{h}:{self.mtls_port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,MTLS:SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.mtls.ssl.client.auth=required
listener.name.mtls.ssl.truststore.type=PEM
listener.name.mtls.ssl.truststore.location={self.tls.ca}
{keystore}
"""
        with self.config_file.open("a") as f:
            f.write(extra)

    def add_scram_user(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> None:
        """Create SCRAM credentials through the plain listener (what `kafka-configs --alter --add-config` does)."""
        from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        mech = {"SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512, "SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256}[mechanism]
        up = UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, 4096), password.encode())
        for fut in admin.alter_user_scram_credentials([up]).values():
            fut.result(30)


def secure_broker(home: Path) -> SecureBroker:
    """A started SecureBroker on free ports with a fresh CA under ``home`` and the SCRAM user SCRAM_USER."""
    s = Settings(var_dir=home, kafka=KafkaSettings.model_validate({"bootstrap_servers": f"127.0.0.1:{free_port()}"}),
                 stack=StackSettings.model_validate({"controller_port": free_port()}))
    fetch_jars(s)
    plain = Broker.from_settings(s)
    broker = SecureBroker(**{f.name: getattr(plain, f.name) for f in fields(Broker)},
                          sasl_port=free_port(), mtls_port=free_port(), tls=Tls.generate(home / "tls"))
    broker.start(log=lambda *_: None)
    broker.add_scram_user(SCRAM_USER, SCRAM_PASSWORD)
    return broker

"""The Kafka client factory without a broker: what each client is configured with, settings validation naming the key,
error mapping, stable group.instance.ids, and that no production module builds a Kafka client around the factory."""

from __future__ import annotations

import ast
import fcntl
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from hypothesis import given
from hypothesis import strategies as st

from attrib import kafka
from attrib import settings as settings_mod
from attrib.errors import ConfigurationError, DependencyUnavailable
from attrib.settings import ConfigError, KafkaSettings, Settings

ROOT = Path(__file__).resolve().parents[2]
PEM = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"


def sasl_ssl(tmp_path: Path, **over: object) -> Settings:
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    k: dict[str, object] = {"bootstrap_servers": "b1:9096,b2:9096", "security_protocol": "SASL_SSL",
                            "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc", "sasl_password": "pw-123",
                            "ssl_ca_file": ca, **over}
    return Settings(var_dir=tmp_path / "var", kafka=KafkaSettings.model_validate(k))


def test_plaintext_is_what_the_clients_used_before(tmp_path: Path) -> None:
    s = Settings(var_dir=tmp_path, kafka=KafkaSettings.model_validate({"bootstrap_servers": "127.0.0.1:9092"}))
    p = kafka.producer_config(s, "ingest", {"acks": "all"})
    assert p == {"bootstrap.servers": "127.0.0.1:9092", "client.id": "attrib-ingest", "security.protocol": "plaintext",
                 "acks": "all", "partitioner": "murmur2_random"}
    assert kafka.admin_config(s)["client.id"] == "attrib-admin"


def test_sasl_ssl_reaches_every_client_kind(tmp_path: Path) -> None:
    s = sasl_ssl(tmp_path)
    want = {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "svc",
            "sasl.password": "pw-123", "ssl.ca.location": str(tmp_path / "ca.pem"),
            "ssl.endpoint.identification.algorithm": "https"}
    for conf in (kafka.producer_config(s, "router"), kafka.consumer_config(s, "sink", "g", topics=["t"]),
                 kafka.admin_config(s)):
        assert want.items() <= conf.items()
    a = kafka.aiokafka_auth(s.kafka.model_copy(update={"ssl_ca_file": None}))
    assert (a["security_protocol"], a["sasl_mechanism"], a["sasl_plain_username"], a["sasl_plain_password"]) == (
        "SASL_SSL", "SCRAM-SHA-512", "svc", "pw-123")
    assert a["ssl_context"] is not None and a["ssl_context"].check_hostname


def test_consumers_carry_group_membership(tmp_path: Path) -> None:
    s = sasl_ssl(tmp_path, session_timeout_s=12, instance_id="pod-7", group_instance_ids={"router": ""})
    sink = kafka.consumer_config(s, "sink", "attrib-sink", {"enable.auto.commit": False}, topics=["a", "b"])
    assert (sink["group.id"], sink["session.timeout.ms"], sink["heartbeat.interval.ms"]) == ("attrib-sink", 12000, 3000)
    assert sink["group.instance.id"].startswith("pod-7-sink-")
    # same subscription, same member (in any order); another subscription is another member: a static member that
    # rejoins is handed its previous assignment, whatever it subscribes now
    def gid(*topics: str) -> str:
        return str(kafka.consumer_config(s, "sink", "attrib-sink", topics=topics)["group.instance.id"])

    assert gid("b", "a") == sink["group.instance.id"] != gid("a")
    assert "group.instance.id" not in kafka.consumer_config(s, "router", "r", topics=["a"])  # off for this service
    assert "group.instance.id" not in kafka.consumer_config(s, "replay", "x")  # tools never hold partitions
    notifier = kafka.aiokafka_consumer(s.model_copy(update={"kafka": s.kafka.model_copy(
        update={"security_protocol": "PLAINTEXT", "sasl_mechanism": None, "sasl_username": None,
                "sasl_password": None, "ssl_ca_file": None})}), "notifier", "attrib-notify", ["alerts"])
    assert (notifier["group_id"], notifier["session_timeout_ms"]) == ("attrib-notify", 12000)
    assert notifier["group_instance_id"].startswith("pod-7-notifier-")


def test_faust_gets_credentials_and_static_membership(tmp_path: Path) -> None:
    import faust

    s = sasl_ssl(tmp_path, ssl_ca_file=None, instance_id="w1")
    conf = kafka.faust_settings(s.model_copy(update={"kafka": s.kafka.model_copy(
        update={"security_protocol": "SASL_PLAINTEXT"})}), "worker", "attrib-worker", ["raw"])
    creds = conf["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol.value == "SASL_PLAINTEXT"
    assert (creds.mechanism.value, creds.username, creds.password) == ("SCRAM-SHA-512", "svc", "pw-123")
    assert conf["broker"] == ["kafka://b1:9096", "kafka://b2:9096"]
    assert conf["consumer_group_instance_id"].startswith("w1-worker-")
    app = faust.App("attrib-worker", **conf)  # Faust accepts every key and keeps them
    assert app.conf.consumer_group_instance_id == conf["consumer_group_instance_id"]
    assert app.conf.broker_credentials is creds


def test_extras_cannot_change_connection_or_partitioner(tmp_path: Path) -> None:
    s = sasl_ssl(tmp_path)
    for key, value in (("bootstrap.servers", "evil:9092"), ("partitioner", "consistent"),
                       ("sasl.password", "x"), ("security.protocol", "plaintext")):
        with pytest.raises(ConfigurationError, match=key):
            kafka.producer_config(s, "ingest", {key: value})
    assert kafka.producer_config(s, "ingest", {"partitioner": "murmur2_random"})["partitioner"] == "murmur2_random"


@pytest.mark.parametrize(("env", "key"), [
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "PLAIN", "SASL_USERNAME": "u"}, "ATTRIB_KAFKA__SASL_PASSWORD"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_USERNAME": "u", "SASL_PASSWORD": "p"}, "ATTRIB_KAFKA__SASL_MECHANISM"),
    ({"SASL_MECHANISM": "PLAIN"}, "ATTRIB_KAFKA__SASL_MECHANISM"),
    ({"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-1", "SASL_USERNAME": "u", "SASL_PASSWORD": "p"},
     "ATTRIB_KAFKA__SASL_MECHANISM"),
    ({"SECURITY_PROTOCOL": "SSL", "SSL_CA_FILE": "/nonexistent/ca.pem"}, "ATTRIB_KAFKA__SSL_CA_FILE"),
    ({"SSL_CA_FILE": "{ca}"}, "ATTRIB_KAFKA__SSL_CA_FILE"),
    ({"SECURITY_PROTOCOL": "TLS"}, "ATTRIB_KAFKA__SECURITY_PROTOCOL"),
    ({"SESSION_TIMEOUT_S": "2"}, "ATTRIB_KAFKA__SESSION_TIMEOUT_S"),
    ({"GROUP_INSTANCE_IDS": '{"sinks": "a"}'}, "ATTRIB_KAFKA__GROUP_INSTANCE_IDS"),
])
def test_inconsistent_settings_fail_at_start_naming_the_key(env: dict[str, str], key: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    for k, v in env.items():
        monkeypatch.setenv(f"ATTRIB_KAFKA__{k}", v.replace("{ca}", str(tmp_path / "ca.pem")))
    with pytest.raises(ConfigError) as err:
        settings_mod.load()
    assert key in str(err.value), str(err.value)
    assert "pw" not in str(err.value) or "PASSWORD" in key


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text(PEM)
    with pytest.raises(ConfigError, match="ssl_cert_file and ssl_key_file"):
        settings_mod.load(kafka={"security_protocol": "SSL", "ssl_cert_file": tmp_path / "c.pem"})


@given(st.sampled_from(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]),
       st.sampled_from([None, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
       st.sampled_from([None, "", "user"]), st.sampled_from([None, "", "secret-xyz"]))
def test_settings_either_fail_naming_a_kafka_key_or_give_a_consistent_config(proto: str, mech: str | None,
                                                                             user: str | None,
                                                                             pw: str | None) -> None:
    given_ = {"security_protocol": proto, "sasl_mechanism": mech, "sasl_username": user, "sasl_password": pw}
    try:
        s = settings_mod.load(kafka={k: v for k, v in given_.items() if v is not None})
    except ConfigError as exc:
        assert "ATTRIB_KAFKA__" in str(exc) and "secret-xyz" not in str(exc)
        return
    conf = kafka.admin_config(s)
    assert conf["security.protocol"] == proto.lower()
    assert ("sasl.mechanism" in conf) == proto.startswith("SASL_") == bool(mech and user and pw)
    assert "secret-xyz" not in repr(s) and "secret-xyz" not in str(s.redacted())


def test_kafka_errors_map_to_configuration_or_unavailable() -> None:
    for code in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL,
                 KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.FENCED_INSTANCE_ID):
        assert isinstance(kafka.mapped(KafkaException(KafkaError(code))), ConfigurationError), code
    for code in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._MSG_TIMED_OUT,
                 KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.REQUEST_TIMED_OUT):
        assert isinstance(kafka.mapped(KafkaError(code)), DependencyUnavailable), code
    import ssl

    import aiokafka.errors as aerr

    assert isinstance(kafka.mapped(aerr.SaslAuthenticationFailed("bad")), ConfigurationError)
    assert isinstance(kafka.mapped(ssl.SSLCertVerificationError("cert")), ConfigurationError)
    assert isinstance(kafka.mapped(aerr.KafkaConnectionError("down")), DependencyUnavailable)
    msg = str(kafka.mapped(KafkaError(KafkaError._AUTHENTICATION, "SASL authentication error:\n  invalid")))
    assert "\n" not in msg and "ATTRIB_KAFKA__SASL_PASSWORD" in msg


def test_default_instance_ids_are_stable_per_slot_and_differ_between_live_replicas(tmp_path: Path) -> None:
    """A second live process on the host takes the next slot; once the first is gone (even SIGKILLed) its slot, hence
    its group.instance.id, is what the restarted process gets."""
    s = Settings(var_dir=tmp_path)
    code = ("import sys, time; from attrib import kafka; from attrib.settings import Settings; "
            f"print(kafka.group_instance_id(Settings(var_dir={str(tmp_path)!r}), 'sink', 'g', ['t']), flush=True); "
            "sys.stdin.read()")
    first = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout is not None
        held = first.stdout.readline().strip()
        mine = str(kafka.group_instance_id(s, "sink", "g", ["t"]))
        assert "-sink-0-" in held and "-sink-1-" in mine
        assert kafka.group_instance_id(s, "sink", "g", ["t"]) == mine  # one process, one member
        assert "-sink-0-" in str(kafka.group_instance_id(s, "sink", "other", ["t"]))  # slots are per group
    finally:
        first.kill()
        first.wait()
    lock = tmp_path / "kafka-members" / "g.sink.0.lock"
    with lock.open("a") as f:  # the dead process's slot is free again
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


# --- no client is built around the factory ---------------------------------------------------------------------

CONSTRUCTORS = {"Producer", "Consumer", "AdminClient", "AIOKafkaConsumer", "AIOKafkaProducer", "AIOKafkaClient"}
FACTORY_KWARGS = {"faust_settings", "aiokafka_consumer"}
PRODUCTION = ["attrib", "schemas", "ingest", "streams", "sinks", "alerts", "ops"]
# The local stack's readiness probe talks to the broker it just started, on its own plaintext listener, before any
# Settings-described cluster exists.
ALLOWED = {("ops/stack.py", "AdminClient")}


def _constructions() -> list[tuple[str, int, str, ast.Call]]:
    out = []
    for d in PRODUCTION:
        for path in sorted((ROOT / d).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel == "attrib/kafka.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                    owner = getattr(f.value, "id", "") if isinstance(f, ast.Attribute) else ""
                    is_app = name.endswith("App") and (name != "App" or owner == "faust")  # faust.App, WorkerApp
                    if name in CONSTRUCTORS or is_app:
                        out.append((rel, node.lineno, "faust.App" if is_app else name, node))
    return out


def _passes_factory_kwargs(call: ast.Call) -> bool:
    for kw in call.keywords:
        v = kw.value
        if kw.arg is None and isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) \
                and getattr(v.func.value, "id", "") == "kafka" and v.func.attr in FACTORY_KWARGS:
            return True
    return False


def test_every_kafka_client_is_configured_by_the_factory() -> None:
    found = _constructions()
    assert any(n == "faust.App" for _, _, n, _ in found)  # the scan sees the construction sites at all
    wrong = [f"{rel}:{line} {name}(...)" for rel, line, name, call in found
             if (rel, name) not in ALLOWED and not (name in ("faust.App", "AIOKafkaConsumer")
                                                     and _passes_factory_kwargs(call))]
    assert not wrong, "build Kafka clients with attrib.kafka (producer/consumer/admin, faust_settings, " \
                      f"aiokafka_consumer): {wrong}"


def test_the_readme_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    blocks = [b for b in re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
              if "security_protocol" in b]
    assert len(blocks) == 2
    monkeypatch.setenv("ATTRIB_KAFKA__SASL_PASSWORD", "from-the-secret-store")
    protocols = set()
    for i, block in enumerate(blocks):
        text = block
        for path in set(re.findall(r'"(/etc/attrib/[^"]+)"', block)):
            local = tmp_path / Path(path).name
            local.write_text(PEM)
            text = text.replace(path, str(local))
        cfg = tmp_path / f"kafka-{i}.toml"
        cfg.write_text(text)
        monkeypatch.setenv("ATTRIB_CONFIG", str(cfg))
        s = settings_mod.load()
        protocols.add(s.kafka.security_protocol)
        assert kafka.admin_config(s)["security.protocol"] == s.kafka.security_protocol.lower()
        monkeypatch.delenv("ATTRIB_KAFKA__SASL_PASSWORD", raising=False)  # the mTLS example uses none
    assert protocols == {"SASL_SSL", "SSL"}

"""The broker's class-data archive (AppCDS): built once next to the jars by a training start, used by every JVM of the
stack afterwards, and a build that cannot succeed is noted once instead of being retried at every start."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from attrib import settings as settings_mod
from attrib.settings import Settings
from ops import stack
from tests.support import free_port


def _linked_jars(tmp: Path) -> Path:
    """A private jars dir (symlinks to the fetched jars): its archive is built here, not next to the shared ones."""
    real = stack.fetch_jars(Settings())
    lib = tmp / "lib"
    lib.mkdir()
    for jar in real.glob("*.jar"):
        (lib / jar.name).symlink_to(jar)
    return lib


def test_archive_is_built_once_and_used_by_the_broker(tmp_path: Path) -> None:
    jars = _linked_jars(tmp_path)
    assert not any("SharedArchiveFile" in f for f in stack.jvm_options(jars))

    said: list[str] = []
    archive = stack.class_archive(jars, said.append)
    assert archive is not None and archive.is_file() and archive.parent == jars, said
    assert any("class-data archive built" in s for s in said), said
    assert f"-XX:SharedArchiveFile={archive}" in stack.jvm_options(jars)

    again: list[str] = []
    assert stack.class_archive(jars, again.append) == archive and again == []  # cached: no second training start

    broker = stack.Broker(tmp_path / "node", jars, "127.0.0.1", free_port(), free_port(), "-Xmx256m")
    try:
        broker.start(log=lambda *_: None)
        cmdline = Path(f"/proc/{broker.pid()}/cmdline").read_bytes().split(b"\0")
        assert f"-XX:SharedArchiveFile={archive}".encode() in cmdline
    finally:
        broker.stop(log=lambda *_: None)
    log = broker.log_file.read_text()
    # the JVM says so when it cannot map an archive (other jars or JDK) and then loads every class itself
    assert "Unable to use shared archive" not in log and "[cds" not in log, log[-2000:]


def test_an_archive_that_cannot_be_built_is_not_retried_at_every_start(tmp_path: Path) -> None:
    jars = tmp_path / "lib"
    jars.mkdir()  # no jars at all: the training broker cannot start
    said: list[str] = []
    assert stack.class_archive(jars, said.append) is None
    assert any("not built" in s for s in said), said
    assert list(jars.glob("*.failed")) and not list(jars.glob("*.jsa"))
    again: list[str] = []
    assert stack.class_archive(jars, again.append) is None and again == []
    assert not any("SharedArchiveFile" in f for f in stack.jvm_options(jars))


def test_a_jdk_update_means_another_archive(tmp_path: Path, monkeypatch) -> None:
    """The archive is only valid for the JDK build that wrote it: its name follows the java binary."""
    jars = tmp_path / "lib"
    jars.mkdir()
    first = stack._archive_path(jars)
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    shutil.copy(shutil.which("java") or "/usr/bin/java", java)
    monkeypatch.setenv("PATH", f"{java.parent}:{os.environ['PATH']}")
    second = stack._archive_path(jars)
    assert first is not None and second is not None and first != second and second.parent == jars


def test_a_cluster_formats_once_and_its_nodes_copy_the_format(tmp_path: Path) -> None:
    """One storage-tool JVM for a new cluster: the other nodes take its bootstrap metadata with their own identity
    (the 3-node `stack up` test starts such a cluster)."""
    ports = [free_port() for _ in range(3)]
    s = Settings(var_dir=tmp_path / "var", kafka={"bootstrap_servers": ",".join(f"127.0.0.1:{p}" for p in ports)},
                 stack={"controller_ports": [free_port() for _ in range(3)]})
    stack.fetch_jars(s)
    one, two, three = stack.Cluster.from_settings(s, 3).nodes
    for b in (one, two, three):
        b.write_config()
    assert one.format_storage()
    assert two.format_like(one) and three.format_like(one)
    assert not two.format_like(one)  # formatted already: left alone

    def meta(b: stack.Broker) -> dict[str, str]:
        text = (b.data_dir / "meta.properties").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))

    metas = [meta(b) for b in (one, two, three)]
    assert [m["node.id"] for m in metas] == ["1", "2", "3"]
    assert len({m["directory.id"] for m in metas}) == 3 and all(len(m["directory.id"]) == 22 for m in metas)
    assert {m["cluster.id"] for m in metas} == {one.cluster_id} and {m["version"] for m in metas} == {"1"}
    boot = (one.data_dir / "bootstrap.checkpoint").read_bytes()
    assert (two.data_dir / "bootstrap.checkpoint").read_bytes() == boot == (three.data_dir / "bootstrap.checkpoint"
                                                                            ).read_bytes()

    lone = stack.Broker.from_settings(Settings(var_dir=tmp_path / "lone"))
    with pytest.raises(stack.StackError, match="same static quorum"):
        lone.format_like(one)


def test_the_jit_setting_reaches_every_jvm_of_the_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """C1 only by default (cheap starts); ``stack.jit = "full"`` for sustained load (bench/e2e.py)."""
    for jit, c1_only in (("c1", True), ("full", False)):
        monkeypatch.setenv("ATTRIB_STACK__JIT", jit)
        s = settings_mod.load(var_dir=tmp_path / jit)
        nodes = [stack.Broker.from_settings(s), *stack.Cluster.from_settings(s, 3).nodes]
        for b in nodes:
            assert ("-XX:TieredStopAtLevel=1" in stack.jvm_options(b.jars, b.jit)) is c1_only, (jit, b)
    monkeypatch.setenv("ATTRIB_STACK__JIT", "c2")
    with pytest.raises(settings_mod.ConfigError, match="ATTRIB_STACK__JIT"):
        settings_mod.load()

"""No loss across kill -9 and rebalances: the set of unique events emitted is complete and every event that waited
for an install ends up enriched with that user's install (the warehouse keeps the highest version per event id).

Re-emission is checked exactly, not against a rate: after a kill the restarted worker re-processes every raw message
from the group's committed offset on, and only those messages may emit again. So the test records, at every kill, the
committed offsets, the raw end offsets (the worker cannot have consumed further) and the output end offsets (what the
killed worker had emitted), and then requires of every output (event id, version) that it was emitted by ONE message
(else dedupe failed) and at most once more per kill whose re-processed range held that message.

The alerts' counts the worker sent (schemas/counts.py), applied as the evaluator applies them, count every event
exactly once — what `events FINAL` holds — however many times the kills made the worker re-process and re-send."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from attrib.settings import Settings, SourceSettings
from attrib.topics import counts_topic
from ops.traffic.synthetic import SOURCES, generate
from schemas import avro
from schemas.counts import fresh, series
from schemas.normalize import normalize
from streams.state import NO_WAIT_TYPES
from tests.streams.conftest import Reader, WorkerProc, produce

WAITS = {"purchase", "signup", "custom", "session", "open", "ad_revenue"}
SETTLE_S = 1.0  # after a kill, before reading offsets: a commit or produce request already sent lands first


@dataclass
class KillPoint:
    """Offsets read right after a kill -9, before the restart (partition -> offset)."""

    committed: dict[int, int]  # the group's committed raw offsets: the restarted worker re-processes from here
    raw_end: dict[int, int]  # raw end offsets: the killed worker consumed nothing at or past these
    out_end: dict[int, int]  # output end offsets: outputs below these were emitted before the kill

    def reprocesses(self, partition: int, offset: int) -> bool:
        return self.committed.get(partition, 0) <= offset < self.raw_end.get(partition, 0)

    def uncommitted(self) -> int:
        return sum(max(0, e - self.committed.get(p, 0)) for p, e in self.raw_end.items())


def offsets(s: Settings) -> KillPoint:
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": s.streams.app_id,
                  "enable.auto.commit": False})
    try:
        parts = range(s.topics.partitions)
        got = c.committed([TopicPartition(s.topics.raw, p) for p in parts], timeout=30)
        committed = {tp.partition: max(tp.offset, 0) for tp in got}  # none yet (-1001): from the start
        raw_end = {p: c.get_watermark_offsets(TopicPartition(s.topics.raw, p), timeout=30)[1] for p in parts}
        out_end = {p: c.get_watermark_offsets(TopicPartition(s.topics.events, p), timeout=30)[1] for p in parts}
    finally:
        c.close()
    return KillPoint(committed, raw_end, out_end)


def settled_offsets(s: Settings, limit_s: float = 30.0) -> KillPoint:
    """Offsets after a kill, once a request the killed worker had already sent can no longer land: read until two
    reads SETTLE_S apart agree (the feeder only moves the raw end offsets)."""
    time.sleep(SETTLE_S)
    last = offsets(s)
    end = time.monotonic() + limit_s
    while True:
        time.sleep(SETTLE_S / 2)
        cur = offsets(s)
        if (cur.committed, cur.out_end) == (last.committed, last.out_end) or time.monotonic() > end:
            return KillPoint(cur.committed, cur.raw_end, cur.out_end)
        last = cur


# Extra copies one kill may cause of an output whose message it re-processes (committed <= offset < raw end at the
# kill). The worker processes every record Faust hands it (never drops a message as its own duplicate), and after a
# restart Faust hands records over more than once: the range since the committed offset (the re-processing itself,
# a copy if the killed worker had emitted it), that range a second time ~1–2 s after recovery, and the last record of
# a re-fetch again (its read-offset check is `>=`). Each copy is the same event and version.
COPIES_PER_KILL = 3
# ... and one copy of any output without a kill: after a re-fetch Faust can hand the last record over again (its
# read-offset check is `>=`), seen ~1.5 s apart at consecutive output positions, no kill involved.
REFETCHED = 1


class Outputs(Protocol):
    """What reemission_problems reads: decoded output records and their (partition, offset) positions."""

    records: list[dict[str, Any]]
    positions: list[tuple[int, int]]


def reemission_problems(out: Outputs, kills: list[KillPoint]) -> tuple[int, int, list[str]]:
    """(re-emitted outputs, re-emissions the kills allow, problems). An output's emitting message is its own delivery,
    or — for an event that waited — the message carrying the user's install, when that came later."""
    install: dict[str, tuple[int, int]] = {}
    for r in out.records:
        if r["event_type"] in ("install", "reinstall"):
            ref = (r["raw"]["partition"], r["raw"]["offset"])
            install[r["user_key"]] = min(install.get(r["user_key"], ref), ref)
    copies: dict[tuple[str, int], list[tuple[tuple[int, int], tuple[int, int], Any]]] = defaultdict(list)
    for r, pos in zip(out.records, out.positions, strict=True):
        own = (r["raw"]["partition"], r["raw"]["offset"])
        inst = install.get(r["user_key"])
        emitter = inst if r["event_type"] not in NO_WAIT_TYPES and inst is not None and inst > own else own
        copies[(r["event_id"], r["version"])].append((emitter, pos, r["emitted_at"]))
    reemitted = allowed_total = 0
    problems: list[str] = []
    for key, cs in copies.items():
        emitters = {e for e, _, _ in cs}
        if len(emitters) > 1:
            problems.append(f"{key} emitted by {len(emitters)} different raw messages {sorted(emitters)}: "
                            "a duplicate delivery was not deduplicated")
            continue
        (part, off), = emitters
        n_kills = sum(1 for k in kills if k.reprocesses(part, off))
        allowed = REFETCHED + COPIES_PER_KILL * n_kills
        reemitted += len(cs) - 1
        allowed_total += allowed
        if len(cs) - 1 > allowed:
            at = [(k.committed.get(part), k.raw_end.get(part), k.out_end) for k in kills]
            problems.append(f"{key} emitted {len(cs)} times by raw {part}/{off}, but only {n_kills} kill(s) "
                            f"re-processed that message (outputs at, emitted at {[c[1:] for c in cs]}; "
                            f"kills: committed, raw end, output ends {at})")
    return reemitted, allowed_total, problems


def locate(s: Settings, expect: Expectation, records: list[dict[str, Any]], kills: list[KillPoint]) -> str:
    """For a failure: where the deliveries of a few missing events sit in the raw topic, against the kills' offsets
    and the group's committed offsets now (re-reads the raw topic; only called when the test fails)."""
    try:
        return _locate(s, expect, records, kills)
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the failure it explains
        return f"(locating the missing events failed: {exc!r})"


def _locate(s: Settings, expect: Expectation, records: list[dict[str, Any]], kills: list[KillPoint]) -> str:
    missing = sorted(expect.events.keys() - {r["event_id"] for r in records})[:5]
    if not missing:
        return ""
    srcs = {x["name"]: SourceSettings(**x) for x in SOURCES}
    c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": f"locate-{time.monotonic_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([s.topics.raw])
    where: dict[str, list[tuple[int, int]]] = defaultdict(list)
    quiet = time.monotonic()
    try:
        while time.monotonic() - quiet < 5:
            msgs = c.consume(2000, 0.5)
            if msgs:
                quiet = time.monotonic()
            for m in msgs:
                v = m.value()
                if m.error() is not None or not v or not v.startswith(avro.MAGIC):
                    continue
                raw = avro.decode(v)[1]
                for e in normalize(srcs[raw["source"]], raw):
                    if e["event_id"] in missing:
                        p, o = m.partition(), m.offset()
                        assert p is not None and o is not None  # (a consumed message has both)
                        where[e["event_id"]].append((p, o))
    finally:
        c.close()
    now = offsets(s)
    return (f"missing events' deliveries (partition, offset): {dict(where)}; kills (committed, raw end) per "
            f"partition: {[(k.committed, k.raw_end) for k in kills]}; committed now {now.committed}")


def diagnose(w: WorkerProc) -> str:
    """Where a restarted worker stands, from its log: what a stuck phase was waiting on."""
    log = w.log_tail(10**8)
    steps = [("joined the group", "Setting newly assigned partitions"), ("recovered its table",
             "Recovery complete"), ("processed a partition", "partition index rebuilt"),
             ("saw its stream skip offsets", "the stream skipped offsets")]
    return "; ".join(f"{what}: {'yes' if needle in log else 'NO'}" for what, needle in steps)


class Expectation:
    def __init__(self, traffic: Any) -> None:
        srcs = {s["name"]: SourceSettings(**s) for s in SOURCES}
        self.events: dict[str, tuple[str, str]] = {}  # event_id -> (event_type, user key)
        self.install: dict[str, str] = {}  # user key -> install event id
        for r in traffic.unique:
            for e in normalize(srcs[r["source"]], r):
                self.events[e["event_id"]] = (e["event_type"], r["user_key"])
                if e["event_type"] == "install":
                    self.install[r["user_key"]] = e["event_id"]

    def problems(self, records: list[dict[str, Any]]) -> list[str]:
        best: dict[str, dict[str, Any]] = {}
        for r in records:
            cur = best.get(r["event_id"])
            if cur is None or r["version"] >= cur["version"]:
                best[r["event_id"]] = r
        missing = sorted(self.events.keys() - best.keys())
        out = [f"missing {len(missing)} events, e.g. {[(e, *self.events[e]) for e in missing[:5]]}"] if missing else []
        if best.keys() - self.events.keys():
            out.append(f"unexpected ids {sorted(best.keys() - self.events.keys())[:5]}")
        bad = [eid for eid, (etype, key) in self.events.items() if etype in WAITS and eid in best and (
            best[eid]["attribution_status"] not in ("attributed", "organic")
            or (best[eid]["first_touch"] or {}).get("event_id") != self.install[key])]
        if bad:
            out.append(f"{len(bad)} waiting events not enriched with their install, e.g. {best[bad[0]]}")
        return out


class AppliedCounts:
    """The counts topic read from the start and applied as the evaluator applies it: per raw partition, offsets up to
    the highest applied are dropped (alerts/app.py ``apply_counts``)."""

    def __init__(self, s: Settings) -> None:
        self.c = Consumer({"bootstrap.servers": s.kafka.bootstrap_servers, "group.id": f"counts-{time.time_ns()}",
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([counts_topic(s)])
        self.applied: dict[int, int] = {}
        self.total: Counter[tuple[str, int]] = Counter()
        self.records = 0
        self.bucket_ms = s.alerts.detect.bucket_s * 1000

    def read_until(self, want: Counter[tuple[str, int]], limit_s: float = 60.0) -> Counter[tuple[str, int]]:
        """Until the applied counts equal ``want`` (the worker sends its last counts with its next commit), or the
        limit: then what was applied, for the assertion to show the difference."""
        end = time.monotonic() + limit_s
        while self.total != want and time.monotonic() < end:
            for m in self.c.consume(500, 0.5):
                if m.error() is not None:
                    continue
                value = m.value()
                assert value is not None, "a tombstone in the changelog"
                rec = orjson.loads(value)
                got = self.applied.get(rec["p"], -1)
                self.total.update({(k, b): n for k, b, n in fresh(rec, got)})
                self.applied[rec["p"]] = max(got, rec["last"])
                self.records += 1
        return self.total

    def final_counts(self, records: list[dict[str, Any]]) -> Counter[tuple[str, int]]:
        """What `events FINAL` counts per (series, bucket): each event id once."""
        seen: dict[str, dict[str, Any]] = {}
        for r in records:
            seen.setdefault(r["event_id"], r)
        out: Counter[tuple[str, int]] = Counter()
        for r in seen.values():
            t = int(r["event_time"].timestamp() * 1000)
            out[(series(r), t - t % self.bucket_ms)] += 1
        return out

    def close(self) -> None:
        self.c.close()


def _settings(worker_settings):
    return worker_settings(streams={"pending_timeout_s": 3600}, sources=SOURCES, partitions=6)


# Its own limits (90 s per phase, 150 s to complete) fail with a diagnosis, which re-reads the raw topic: leave them
# room inside pytest's timeout, or a slow machine reports only "Timeout" (it passes in ~1 minute).
@pytest.mark.timeout(720)
def test_kill_9_at_random_moments_loses_nothing(worker_settings, workers):
    s = _settings(worker_settings)
    traffic = generate(users=4000, events_per_user=4, dup_rate=0.3, ooo_rate=0.1, seed=11)
    assert len(traffic.unique) >= 20_000 and traffic.duplicates > 6000 and traffic.out_of_order_users > 300
    expect = Expectation(traffic)
    values = [(r["user_key"], avro.encode("raw_delivery", r)) for r in traffic.raws]
    chunks = [values[i:i + 2000] for i in range(0, len(values), 2000)]

    def feed() -> None:
        for c in chunks:
            produce(s, c)
            time.sleep(0.5)

    feeder = threading.Thread(target=feed)
    feeder.start()
    out = Reader(s, s.topics.events)
    counted = AppliedCounts(s)
    rnd = random.Random(5)
    kills: list[KillPoint] = []
    phases: list[str] = []
    w = workers(s, "w1")
    self_exits: list[str] = []

    def restart(dead: WorkerProc) -> WorkerProc:
        """The worker exited by itself (code 70: Faust skipped offsets, it refused to commit past them): it re-processes
        from the committed offsets like after a kill, so it counts as one; restart it as a supervisor would."""
        nonlocal w
        self_exits.append(dead.log.stem)
        kills.append(settled_offsets(s))
        w = workers(s, f"w1-{len(kills)}")
        return w

    def why_stuck(_: list[dict[str, Any]]) -> str:
        return diagnose(w)  # the current worker: restart() and the kills rebind w

    try:
        for _ in range(4):  # kill at random moments while events flow, restart straight away
            t0 = time.monotonic()
            target = len(out.records) + rnd.randint(1500, 5000)
            # each phase has its own limit, and a stuck one says how far the worker got

            def progressed(rs: list[dict[str, Any]], t: int = target) -> bool:
                return len(rs) >= t or not expect.problems(rs)

            out.read_until(progressed, f"progress after {len(kills)} kills", limit_s=90, proc=w, explain=why_stuck,
                           restart=restart)
            phases.append(f"{time.monotonic() - t0:.1f}s")
            if not expect.problems(out.records):
                break
            time.sleep(rnd.random())
            w.kill9()
            kills.append(settled_offsets(s))
            w = workers(s, f"w1-{len(kills)}")
        feeder.join()
        t0 = time.monotonic()
        recs = out.read_until(
            lambda rs: not expect.problems(rs), "complete output", limit_s=150, proc=w, restart=restart,
            explain=lambda rs: f"{expect.problems(rs)}; {why_stuck(rs)}; {locate(s, expect, rs, kills)}")
        phases.append(f"{time.monotonic() - t0:.1f}s")
        want = counted.final_counts(recs)
        got = counted.read_until(want)
    finally:
        feeder.join()
        out.close()
        counted.close()
    assert len(kills) >= 3, "the worker finished before being killed three times; feed more events"
    assert expect.problems(recs) == []
    # the alerts' counts: every event once, none twice, though the kills made the worker re-send counts
    diff = {k: (got[k], want[k]) for k in got.keys() | want.keys() if got[k] != want[k]}
    assert sum(want.values()) == len(expect.events) and diff == {}, (
        f"counts (applied, events FINAL) differ in {len(diff)} buckets, e.g. {list(diff.items())[:5]}; "
        f"{counted.records} counts records")
    # at-least-once: every output emitted more than once was re-emitted by a message a kill made the worker
    # re-process (at most COPIES_PER_KILL times per such kill), and no event was emitted by two messages (dedupe held)
    reemitted, allowed, problems = reemission_problems(out, kills)
    summary = (f"{len(kills)} kills, {sum(k.uncommitted() for k in kills)} raw messages past the committed offsets "
               f"at the kills, {reemitted} outputs re-emitted (allowed {allowed}), {traffic.duplicates} duplicate "
               f"deliveries removed; phases {phases}; exited by themselves (skipped offsets): {self_exits}")
    print(summary)
    assert problems == [], f"{len(problems)} problems, e.g. {problems[:3]}; {summary}"


def wait_for_partitions(w: WorkerProc, others: list[WorkerProc], limit_s: float = 90.0) -> None:
    """Until ``w`` processes a partition of its own (its first tick ran), one limit per step of the way there, so a
    stuck rebalance says which step it is stuck at instead of timing out the test."""
    steps = [("Setting newly assigned partitions", "join the group and get an assignment"),
             ("Recovery complete", "recover its table from the changelog"),
             ("partition index rebuilt", "process a message of its partitions")]
    for needle, what in steps:
        end = time.monotonic() + limit_s
        while needle not in w.log_tail(10**8):
            if w.p is not None and w.p.poll() is not None:
                raise AssertionError(f"{w.log.stem} exited ({w.p.returncode}) before it could {what}\n{w.log_tail()}")
            if time.monotonic() > end:
                tails = "\n".join(f"--- {o.log.stem}: {diagnose(o)}\n{o.log_tail(2500)}" for o in others)
                raise AssertionError(f"{w.log.stem} did not {what} within {limit_s:.0f} s ({diagnose(w)})\n"
                                     f"{w.log_tail()}\n{tails}")
            time.sleep(0.5)


def test_two_workers_with_a_rebalance_give_the_same_result(worker_settings, workers):
    """With RocksDB stores (each worker its own data dir): state follows the partitions through the changelog."""
    s = _settings(worker_settings)
    traffic = generate(users=1200, events_per_user=4, dup_rate=0.3, ooo_rate=0.1, seed=23)
    expect = Expectation(traffic)
    values = [(r["user_key"], avro.encode("raw_delivery", r)) for r in traffic.raws]
    half = len(values) // 2
    out = Reader(s, s.topics.events)
    try:
        w1 = workers(s, "w1", store="rocksdb://")
        produce(s, values[:half])
        out.read_until(lambda rs: len(rs) >= 1000, "first worker's output", proc=w1)
        w2 = workers(s, "w2", store="rocksdb://")  # joins the group: partitions (and their state) move to it
        wait_for_partitions(w2, others=[w1])
        produce(s, values[half:])
        recs = out.read_until(lambda rs: not expect.problems(rs), "complete output", limit_s=180, proc=w2,
                              explain=expect.problems)
        assert w1.p.poll() is None and w2.p.poll() is None
    finally:
        out.close()
    assert expect.problems(recs) == []


def test_the_reemission_check_catches_dedupe_failures_and_unexplained_reemits():
    """The check above on hand-made outputs: it must fail when something is really wrong."""

    def rec(eid: str, etype: str, part: int, off: int, user: str = "u1") -> dict[str, Any]:
        return {"event_id": eid, "event_type": etype, "version": 1, "user_key": user,
                "raw": {"topic": "raw", "partition": part, "offset": off}}

    class Out:
        def __init__(self, rows: list[tuple[dict[str, Any], tuple[int, int]]]) -> None:
            self.records, self.positions = [{**r, "emitted_at": 0} for r, _ in rows], [p for _, p in rows]

    kill = KillPoint(committed={0: 10}, raw_end={0: 20}, out_end={0: 5})
    # purchase at 3 waited for the install at 12 (in the re-processed range): its copy after the kill is allowed
    ok = Out([(rec("i", "install", 0, 12), (0, 0)), (rec("p", "purchase", 0, 3), (0, 1)),
              (rec("i", "install", 0, 12), (0, 5)), (rec("p", "purchase", 0, 3), (0, 6))])
    assert reemission_problems(ok, [kill]) == (2, 2 * (REFETCHED + COPIES_PER_KILL), [])
    # more copies than a kill can explain: an unexplained re-emission
    many = Out([(rec("i", "install", 0, 12), (0, n)) for n in range(REFETCHED + COPIES_PER_KILL + 2)])
    assert "only 1 kill(s)" in reemission_problems(many, [kill])[2][0]
    # the same event from a second delivery (a retry at 15) is a dedupe failure, even inside the range
    dup = Out([(rec("e", "purchase", 0, 2), (0, 0)), (rec("e", "purchase", 0, 15), (0, 6))])
    assert "not deduplicated" in reemission_problems(dup, [kill])[2][0]
    # a message before the committed offset was not re-processed: no copy beyond a re-fetched one is allowed
    early = Out([(rec("e", "install", 0, 4), (0, n)) for n in range(REFETCHED + 2)])
    assert "only 0 kill(s)" in reemission_problems(early, [kill])[2][0]
    # a message delivered after the kill (at/after the raw end offset) was not re-processed: likewise
    late = Out([(rec("e", "install", 0, 25), (0, 7 + n)) for n in range(REFETCHED + 2)])
    assert "only 0 kill(s)" in reemission_problems(late, [kill])[2][0]

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sinks.route.offsets import OffsetTracker
from sinks.route.policy import Breaker, TokenBucket, backoff, retry_after


@given(st.integers(1, 100), st.floats(0.001, 10), st.floats(0.01, 600), st.floats(0, 1))
def test_backoff_bounds(attempt: int, initial: float, cap: float, r: float) -> None:
    d = min(cap, initial * 2 ** (attempt - 1))
    got = backoff(attempt, initial, cap, lambda: r)
    assert d / 2 - 1e-9 <= got <= d + 1e-9


def test_backoff_grows_then_caps() -> None:
    top = [backoff(a, 0.5, 8, lambda: 1.0) for a in range(1, 8)]
    assert top == [0.5, 1, 2, 4, 8, 8, 8]


def test_retry_after() -> None:
    assert retry_after("3", 60) == 3 and retry_after("999", 60) == 60
    assert retry_after(None, 60) is None and retry_after("Wed, 21 Oct", 60) is None


@given(st.floats(0.5, 100), st.integers(1, 20), st.lists(st.floats(0, 2), min_size=1, max_size=200))
def test_bucket_never_exceeds_rate_plus_burst(rate: float, burst: int, gaps: list[float]) -> None:
    b, now, starts = TokenBucket(rate, burst), 0.0, []
    for g in gaps:
        now += g
        starts.append(now + b.take(now))
    span = max(starts) - min(starts)
    assert len(starts) <= burst + rate * span + 1e-6 + 1


def test_breaker_cycle() -> None:
    b = Breaker(failures=3, reset_s=10)
    for t in range(2):
        b.record(False, t)
    assert b.allow(2)
    b.record(False, 2)
    assert b.is_open and not b.allow(5) and b.wait_s(5) == 7
    assert b.allow(12)  # the probe
    assert not b.allow(12)  # only one
    b.record(False, 12)
    assert b.state == "open" and not b.allow(13)
    assert b.allow(22)
    b.record(True, 22)
    assert b.state == "closed" and b.allow(22)


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3)), max_size=60), st.randoms())
def test_tracker_commits_only_finished_prefixes(records, rnd) -> None:
    t = OffsetTracker()
    next_off = {0: 0, 1: 0, 2: 0}
    todo = []
    finished: dict[tuple[int, int], bool] = {}
    for part, waiting in records:
        off = next_off[part]
        next_off[part] += 1
        t.add(part, off, waiting)
        finished[(part, off)] = waiting == 0
        todo += [(part, off)] * waiting
    rnd.shuffle(todo)
    left = {k: todo.count(k) for k in set(todo)}
    committed: dict[int, int] = {}
    for part, off in todo:
        t.done(part, off)
        left[(part, off)] -= 1
        if not left[(part, off)]:
            finished[(part, off)] = True
        for p, o in t.committable().items():
            assert all(finished[(p, x)] for x in range(o))  # nothing unfinished below a commit
            committed[p] = o
    committed.update(t.committable())
    assert committed == {p: n for p, n in next_off.items() if n}  # everything finished → all committed
    assert t.in_flight() == 0


def test_tracker_ignores_completions_from_before_a_revocation() -> None:
    t = OffsetTracker()
    old = t.add(0, 0, 1)
    t.forget([0])  # revoked, then assigned again: the record is read and routed anew
    new = t.add(0, 0, 1)
    t.done(0, 0, old)  # the first delivery finishing late must not finish the second
    assert t.committable() == {} and t.in_flight() == 1
    t.done(0, 0, new)
    assert t.committable() == {0: 1}

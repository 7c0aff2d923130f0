"""The pure per-user state machine (streams/state.py), property-tested."""

from __future__ import annotations

import copy
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import codec
from streams.state import (
    CORRECTION,
    FLUSHED,
    OVERFLOW,
    REEMIT,
    TIMEOUT,
    Limits,
    Rules,
    apply_events,
    apply_tick,
    new_state,
    pending_count,
)

LIMITS = Limits(dedupe_retention_ms=10_000_000, pending_timeout_ms=1_000_000, max_pending_per_user=1000,
                reemit_grace_ms=500_000)
NO_RULES = Rules()
T0 = 1_700_000_000_000


def ev(eid: str, etype: str, t: int, **kw) -> dict:
    return {"event_id": eid, "event_type": etype, "event_name": kw.pop("name", etype), "event_time": T0 + t,
            "received_at": T0 + t, "user_key": "u", "media_source": kw.pop("media_source", "meta"),
            "is_organic": kw.pop("is_organic", False), "campaign": "c1", "revenue": kw.pop("revenue", None), **kw}


def final(outputs: list[tuple[str, dict]]) -> dict[str, dict]:
    """The warehouse's view: the highest version per event id."""
    best: dict[str, dict] = {}
    for _, o in outputs:
        cur = best.get(o["event_id"])
        if cur is None or o["version"] >= cur["version"]:
            best[o["event_id"]] = o
    return best


def run(msgs: list[list[dict]], state=None, start=0, limits=LIMITS, rules=NO_RULES, now=None):
    state = state if state is not None else new_state(0)
    outs = []
    for i, m in enumerate(msgs, start):
        res = apply_events(state, m, (0, i), now if now is not None else T0 + i, limits, rules, room=10**9)
        outs += res.outputs
    return state, outs


non_touch = st.sampled_from(["purchase", "signup", "custom", "ad_revenue", "session"])


@st.composite
def user_events(draw, installs: int = 1):
    n = draw(st.integers(1, 12))
    evs = [ev(f"e{i}", draw(non_touch), draw(st.integers(0, 10_000))) for i in range(n)]
    evs += [ev(f"i{j}", "install", draw(st.integers(0, 10_000))) for j in range(installs)]
    return evs


@settings(max_examples=150, deadline=None)
@given(user_events(), st.randoms(use_true_random=False), st.lists(st.integers(0, 30), max_size=10))
def test_any_permutation_gives_the_same_final_set(evs, rnd, dup_idx):
    base = final(run([[e] for e in evs])[1])
    shuffled = evs[:]
    rnd.shuffle(shuffled)
    shuffled += [copy.deepcopy(shuffled[i % len(shuffled)]) for i in dup_idx]  # retries of the same ids
    got = final(run([[e] for e in shuffled])[1])
    assert got.keys() == {e["event_id"] for e in evs}
    strip = lambda d: {k: {f: v for f, v in o.items() if f != "version"} for k, o in d.items()}  # noqa: E731
    assert strip(got) == strip(base)
    assert all(o["attribution_status"] == "attributed" for o in got.values())


@settings(max_examples=150, deadline=None)
@given(user_events(), st.randoms(use_true_random=False), st.data())
def test_reprocessing_the_same_message_reemits_instead_of_dropping(evs, rnd, data):
    rnd.shuffle(evs)
    msgs = [[e] for e in evs]
    k = data.draw(st.integers(0, len(msgs) - 1))
    state, _ = run(msgs[:k])
    res = apply_events(state, msgs[k], (0, k), T0 + k, LIMITS, NO_RULES, room=10**9)
    again = apply_events(copy.deepcopy(state), msgs[k], (0, k), T0 + k, LIMITS, NO_RULES, room=10**9)
    key = lambda outs: sorted((o["event_id"], o["version"], o["attribution_status"]) for _, o in outs)  # noqa: E731
    assert key(again.outputs) == key(res.outputs)
    assert again.duplicates == 0
    # a different message with the same id is a duplicate
    dup = apply_events(copy.deepcopy(state), msgs[k], (0, 10_000), T0 + k, LIMITS, NO_RULES, room=10**9)
    assert dup.outputs == [] and dup.duplicates == 1


@settings(max_examples=150, deadline=None)
@given(user_events(), st.randoms(use_true_random=False), st.data())
def test_crash_after_state_write_loses_nothing(evs, rnd, data):
    """State saved up to message k, outputs only up to commit point c <= k; restart re-processes c.. from the
    saved (ahead) state. The union of what reached the output equals the uncrashed run."""
    rnd.shuffle(evs)
    msgs = [[e] for e in evs] + [[copy.deepcopy(evs[0])]]
    n = len(msgs)
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(c, n))
    expect = final(run(msgs)[1])
    state, _ = run(msgs[:k])
    _, delivered = run(msgs[:c])
    state = codec.load_state(codec.dump_state(state))  # through the changelog
    _, replayed = run(msgs[c:], state=state, start=c)
    assert final(delivered + replayed) == expect


def test_purchase_before_install_is_released_in_event_time_order():
    msgs = [[ev("p2", "purchase", 20)], [ev("p1", "purchase", 10)], [ev("i", "install", 5)]]
    state, outs = run(msgs)
    assert [(k, o["event_id"]) for k, o in outs] == [("event", "i"), (FLUSHED, "p1"), (FLUSHED, "p2")]
    assert all(o["first_touch"]["event_id"] == "i" and o["attribution_status"] == "attributed" for _, o in outs)
    assert pending_count(state) == 0


def test_timeout_then_correction_on_late_install():
    state, outs = run([[ev("p", "purchase", 0, revenue=Decimal("1.5"))]])
    assert outs == []
    res = apply_tick(state, (0, 50), T0 + LIMITS.pending_timeout_ms - 1, LIMITS)
    assert res.outputs == []
    res = apply_tick(state, (0, 51), T0 + LIMITS.pending_timeout_ms, LIMITS)
    assert [(k, o["attribution_status"], o["version"]) for k, o in res.outputs] == [(TIMEOUT, "pending_timeout", 1)]
    state = codec.load_state(codec.dump_state(state))
    # a replayed tick re-emits the same timeout
    again = apply_tick(copy.deepcopy(state), (0, 51), T0 + LIMITS.pending_timeout_ms, LIMITS)
    assert [(k, o["version"]) for k, o in again.outputs] == [(REEMIT, 1)]
    res = apply_events(state, [ev("i", "install", 1, is_organic=True, media_source="organic")], (0, 60),
                       T0 + LIMITS.pending_timeout_ms + 5, LIMITS, NO_RULES, room=10)
    kinds = [(k, o["event_id"], o["attribution_status"], o["version"]) for k, o in res.outputs]
    assert kinds == [("event", "i", "organic", 1), (CORRECTION, "p", "organic", 2)]
    assert res.outputs[1][1]["revenue"] == Decimal("1.5")


def test_overflow_is_emitted_unattributed_never_dropped():
    lim = Limits(max_pending_per_user=3)
    state, outs = run([[ev(f"p{i}", "purchase", i)] for i in range(5)], limits=lim)
    assert [(k, o["event_id"], o["attribution_status"]) for k, o in outs] == [
        (OVERFLOW, "p3", "unattributed"), (OVERFLOW, "p4", "unattributed")]
    res = apply_events(state, [ev("x", "purchase", 9)], (0, 9), T0, LIMITS, NO_RULES, room=0)  # worker-wide bound
    assert [k for k, _ in res.outputs] == [OVERFLOW]


def test_allowlist_and_first_time_only():
    rules = Rules(allowlist=frozenset({"install", "purchase", "signup"}), first_time_only=frozenset({"signup"}))
    msgs = [[ev("i", "install", 0)], [ev("s1", "signup", 1)], [ev("x", "custom", 2, name="level_up")],
            [ev("s2", "signup", 3)], [ev("p", "purchase", 4)]]
    state, outs = run(msgs, rules=rules)
    assert [o["event_id"] for _, o in outs] == ["i", "s1", "p"]
    # replaying the dropped repeat emits nothing; replaying the first emits it again
    assert apply_events(state, msgs[3], (0, 3), T0, LIMITS, rules, room=9).outputs == []
    assert [o["event_id"] for _, o in apply_events(state, msgs[1], (0, 1), T0, LIMITS, rules, room=9).outputs] == ["s1"]


def test_dedupe_window_expires_and_idle_state_is_deleted():
    lim = Limits(dedupe_retention_ms=100, state_retention_ms=1000)
    state, outs = run([[ev("i", "install", 0)], [ev("i", "install", 0)]], limits=lim, now=T0)
    assert len(outs) == 1
    res = apply_events(state, [ev("i", "install", 0)], (0, 7), T0 + 100, lim, NO_RULES, room=9)
    assert len(res.outputs) == 1  # outside the window: new again
    assert not apply_tick(state, (0, 8), T0 + 500, lim).delete
    assert state["s"] == {}
    assert apply_tick(state, (0, 9), T0 + 1100, lim).delete


def test_reattribution_sets_last_touch_but_keeps_first():
    msgs = [[ev("i", "install", 0)], [ev("r", "reattribution", 10, media_source="google")],
            [ev("p", "purchase", 20)], [ev("q", "purchase", 5)]]
    _, outs = run(msgs)
    by = {o["event_id"]: o for _, o in outs}
    assert by["p"]["first_touch"]["event_id"] == "i" and by["p"]["last_touch"]["media_source"] == "google"
    assert by["q"]["last_touch"]["event_id"] == "i"  # touches after the event don't apply

from ops.inspect.store import MINUTE_MS, Row, Store


def row(at: int, source: str = "branch", status: str = "accepted") -> Row:
    return Row(at=at, source=source, method="POST", status=status, http_status=200, verification="passed",
               reason="hmac", size=10)


def test_rates_cover_the_last_hour_per_source() -> None:
    st = Store()
    now = 1000 * MINUTE_MS + 30_000
    for m in (1000, 1000, 999, 941, 940, 900):
        st.add(row(m * MINUTE_MS + 5))
    st.add(row(1000 * MINUTE_MS, "adjust"))
    r = st.rates(now)
    assert r["branch"][-1] == 2 and r["branch"][-2] == 1 and r["branch"][0] == 1 and sum(r["branch"]) == 4
    assert r["adjust"][-1] == 1 and len(r["adjust"]) == 60


def test_outcome_joins_by_ref_even_when_it_comes_first_and_bumps_seq() -> None:
    st = Store()
    st.outcome(("raw", 0, 7), None, "install", "event")
    a = st.add(row(1), ref=("raw", 0, 7))
    b = st.add(row(2), ref=("raw", 0, 8))
    assert a.event_type == "install" and b.event_type == ""
    seq = b.seq
    st.outcome(("raw", 0, 8), None, "purchase", "event")
    st.outcome(("raw", 0, 8), None, "custom", "event")
    assert b.event_type == "purchase,custom" and b.seq > seq
    assert [r["id"] for r in st.since(seq)] == [b.id]


def test_filters_keep_and_alerts() -> None:
    st = Store(keep=3)
    for i in range(5):
        st.add(row(i, "a" if i % 2 else "b", "rejected" if i == 4 else "accepted"))
    assert len(st.rows) == 3
    assert [r["at"] for r in st.since(0, source="b")] == [2, 4]
    assert [r["at"] for r in st.since(0, status="rejected")] == [4]
    st.alert({"alert_id": "x", "state": "firing"})
    st.alert({"alert_id": "y", "state": "firing"})
    st.alert({"alert_id": "x", "state": "resolved", "resolved_at": 5})
    assert list(st.alerts) == ["y"]


def test_a_kept_400_is_one_row_whichever_feed_brings_it_first() -> None:
    for first, second in (("dead_letter", "rejected"), ("rejected", "dead_letter")):
        st = Store()
        st.add(row(1, status="accepted"))
        a = row(2, status=first)
        a.delivery_id = "d-1"
        b = row(3, status=second)
        b.delivery_id = "d-1"
        st.add(a)
        st.add(b)
        shown = st.since(0)
        assert [r["status"] for r in shown] == ["accepted", "dead_letter"], (first, shown)
        assert sum(sum(v) for v in st.rates(4).values()) == 2  # counted once in the chart too

"""The one dead-letter constructor: one id scheme (uuid5 of stage and anchor), records the Avro schema accepts."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from schemas import avro
from schemas.dead_letter import DETAIL_MAX, NAMESPACE, anchor_of, dead_letter, dead_letter_id

positions = st.fixed_dictionaries({"topic": st.sampled_from(["attrib.events", "attrib.raw-deliveries"]),
                                   "partition": st.integers(0, 63), "offset": st.integers(0, 2**40)})
stages = st.sampled_from(["ingress", "normalize", "process", "sink", "route", "alerts"])


@given(stages, positions, st.text(max_size=50), st.text(max_size=50))
def test_the_same_position_gives_the_same_id_whatever_the_reason_or_time(stage, ref, why1, why2):
    a = dead_letter(stage=stage, reason=why1, detail="first", raw_ref=ref, failed_at_ms=1)
    b = dead_letter(stage=stage, reason=why2, detail="second", raw_ref=dict(ref), failed_at_ms=2)
    assert a["dead_letter_id"] == b["dead_letter_id"]
    assert uuid.UUID(a["dead_letter_id"]) == uuid.uuid5(NAMESPACE, f"{stage}|{ref['topic']}/{ref['partition']}/"
                                                                  f"{ref['offset']}")


@given(stages, stages, positions, positions)
def test_different_stages_or_anchors_give_different_ids(s1, s2, r1, r2):
    same = (s1, anchor_of(r1)) == (s2, anchor_of(r2))
    a = dead_letter(stage=s1, reason="x", detail="", raw_ref=r1)["dead_letter_id"]
    b = dead_letter(stage=s2, reason="x", detail="", raw_ref=r2)["dead_letter_id"]
    assert (a == b) == same


def test_the_anchor_is_the_position_else_the_delivery_else_the_content():
    ref = {"topic": "t", "partition": 1, "offset": 2}
    assert anchor_of(ref, "d1", b"x") == "t/1/2"
    assert anchor_of(None, "d1", b"x") == "delivery:d1"
    assert anchor_of(None, None, b"x") == anchor_of(None, None, "x") != anchor_of(None, None, b"y")
    # an explicit anchor wins (a refused warehouse row is named by its digest)
    assert dead_letter(stage="sink", reason="r", detail="", raw_ref=ref, anchor="events/sha256:ab")[
        "dead_letter_id"] == dead_letter_id("sink", "events/sha256:ab") != dead_letter_id("sink", "t/1/2")
    # the ingress anchors on the delivery: the same delivery dead-lettered twice is one row
    one = dead_letter(stage="ingress", reason="empty_body", detail="", delivery_id="d1", payload=b"a")
    two = dead_letter(stage="ingress", reason="empty_body", detail="", delivery_id="d1", payload=b"b")
    assert one["dead_letter_id"] == two["dead_letter_id"] != dead_letter(
        stage="ingress", reason="empty_body", detail="", delivery_id="d2", payload=b"a")["dead_letter_id"]


@given(st.text(min_size=0, max_size=3 * DETAIL_MAX))
def test_detail_is_truncated_to_the_limit(detail):
    got = dead_letter(stage="sink", reason="r", detail=detail, payload=b"p")["detail"]
    assert got == detail[:DETAIL_MAX] and len(got) <= DETAIL_MAX


@given(stages, st.one_of(st.none(), positions), st.one_of(st.none(), st.text(min_size=1, max_size=20)),
       st.one_of(st.none(), st.binary(max_size=100)), st.text(max_size=100))
def test_every_record_is_a_valid_dead_letter_that_round_trips(stage, ref, delivery, payload, detail):
    rec = dead_letter(stage=stage, reason="some_reason", detail=detail, raw_ref=ref, delivery_id=delivery,
                      payload=payload, source="af-prod", mmp="appsflyer", field="a.b", failed_at_ms=1_700_000_000_000)
    name, back = avro.decode(avro.encode("dead_letter", rec))
    assert name == "dead_letter"
    assert {k: v for k, v in back.items() if k != "failed_at"} == {k: v for k, v in rec.items() if k != "failed_at"}
    assert int(back["failed_at"].timestamp() * 1000) == rec["failed_at"]

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.replay.checkpoint import Checkpoint
from ops.replay.progress import Progress, duration
from ops.replay.spec import RangeSpec, SpecError, Target, parse_time

NOW = 1_764_460_800_000  # 2025-11-30T00:00:00Z


@pytest.mark.parametrize(("text", "want"), [
    ("now", NOW), ("2h", NOW - 7_200_000), ("-90m", NOW - 5_400_000), ("7d", NOW - 7 * 86_400_000),
    ("2025-11-29T23:00:00Z", NOW - 3_600_000), ("2025-11-29", NOW - 86_400_000),
    ("2025-11-30T01:00:00+01:00", NOW), ("1764460800000", NOW),
])
def test_times(text: str, want: int) -> None:
    assert parse_time(text, NOW) == want


def test_bad_inputs() -> None:
    with pytest.raises(SpecError):
        parse_time("yesterday-ish", NOW)
    for bad in ("topic:", "clickhouse:1db", "kafka:x", "live:x"):
        with pytest.raises(SpecError):
            Target.parse(bad)
    with pytest.raises(SpecError):
        RangeSpec(NOW, NOW, Target("live"))


def test_replay_id_is_stable_and_specific() -> None:
    a = RangeSpec(NOW - 10, NOW, Target.parse("topic:x"))
    assert a.replay_id == RangeSpec(NOW - 10, NOW, Target.parse("topic:x")).replay_id
    assert a.replay_id != RangeSpec(NOW - 10, NOW, Target.parse("topic:y")).replay_id
    assert a.replay_id != RangeSpec(NOW - 10, NOW, Target.parse("topic:x"), source="s").replay_id
    # typed as ages: the same command later has the same id (it resumes), another age does not
    asked = RangeSpec(NOW - 7_200_000, NOW, Target.parse("topic:x"), asked=("2h", "now"))
    assert asked.replay_id == RangeSpec(NOW + 5_000 - 7_200_000, NOW + 5_000, Target.parse("topic:x"),
                                        asked=("2h", "now")).replay_id
    assert asked.replay_id != RangeSpec(NOW - 10_800_000, NOW, Target.parse("topic:x"), asked=("3h", "now")).replay_id


@given(st.integers(1, 10**9), st.integers(0, 10**9), st.floats(0.1, 10**5))
def test_progress_eta_consistent(total: int, done: int, elapsed: float) -> None:
    done = min(done, total)
    p = Progress(total, done=done, started=0.0)
    line = p.render(elapsed)
    assert f"{done:,}/{total:,}" in line
    eta = p.eta(elapsed)
    if done:
        assert eta is not None and abs(eta - (total - done) * elapsed / done) <= 1e-6 * max(1.0, eta)
    else:
        assert eta is None and "--:--:--" in line


def test_progress_rate_ignores_work_done_before_a_resume() -> None:
    p = Progress(100, done=60, started=10.0, base=60)
    p.done = 70
    assert p.rate(15.0) == 2.0 and p.eta(15.0) == 15.0 and duration(3725) == "1:02:05"


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path / "r.sqlite")
    ck.set_meta(spans={"0": [0, 10]})
    t = ck.table()
    t["u1"] = b"a"
    t[b"u2"] = b"b"
    ck.save({0: 5}, t, produced={"x": 3})
    del t["u1"]
    ck.save({0: 7}, t)
    ck.close()
    ck = Checkpoint(tmp_path / "r.sqlite")
    assert ck.offsets() == {0: 7} and ck.meta() == {"spans": {"0": [0, 10]}, "produced": {"x": 3}}
    assert dict(ck.table().items()) == {b"u2": b"b"}
    ck.close()

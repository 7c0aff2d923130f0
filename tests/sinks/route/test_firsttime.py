from pathlib import Path

from sinks.route.firsttime import FirstTimeStore


def test_first_per_user_and_kind_survives_restart(tmp_path: Path) -> None:
    p = tmp_path / "d.sqlite"
    s = FirstTimeStore(p)
    assert s.claim("u1", "purchase", "e1")
    assert s.claim("u1", "purchase", "e1")  # the same event again (retry/replay) still passes
    assert not s.claim("u1", "purchase", "e2")
    assert s.claim("u2", "purchase", "e3")
    assert s.claim("u1", s.kind("custom", "level_up"), "e4")
    s.close()
    s = FirstTimeStore(p)
    assert not s.claim("u1", "purchase", "e5") and s.claim("u1", "purchase", "e1")
    s.close()

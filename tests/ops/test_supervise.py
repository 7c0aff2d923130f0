"""`attrib run`'s supervisor: a service that exits is restarted after a doubling delay, and says so."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from ops.supervise import Backoff, Service, Supervisor, exit_reason


@given(st.lists(st.floats(0, 100), max_size=20))
def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_good_run(uptimes: list[float]) -> None:
    b = Backoff(first_s=1.0, max_s=30.0, reset_after_s=10.0)
    delay = None
    for up in uptimes:
        nxt = b.next(delay, up)
        if delay is None or up >= b.reset_after_s:
            assert nxt == b.first_s
        else:
            assert nxt == min(b.max_s, 2 * delay)
        assert b.first_s <= nxt <= b.max_s
        delay = nxt


def test_exit_reason_names_signals() -> None:
    assert exit_reason(70) == "code 70"
    assert exit_reason(-9) == "code -9, SIGKILL"
    assert exit_reason(-15) == "code -15, SIGTERM"


def test_a_service_that_exits_70_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    """The worker exits 70 when Faust skipped offsets, so that a restart re-reads them: it must be restarted."""
    runs = tmp_path / "runs"
    code = f"import sys; open({str(runs)!r}, 'a').write('x'); sys.exit(70)"
    svc = Service("worker", [sys.executable, "-c", code])
    said: list[str] = []
    sup = Supervisor([svc], tmp_path / "logs", say=said.append)
    svc.start(tmp_path / "logs")
    assert svc.proc is not None
    svc.proc.wait(60)
    t0 = 1_000_000.0  # the supervisor's clock is passed in: no sleeping, no timing in the test
    sup._started["worker"] = t0
    sup.check(t0 + 0.1)
    assert said == ["worker exited (code 70); restarting in 1s"]
    first = svc.proc
    sup.check(t0 + 0.5)  # not yet due
    assert svc.proc is first and sup.restarts == {}
    sup.check(t0 + 1.2)
    assert svc.proc is not first and sup.restarts == {"worker": 1}
    svc.proc.wait(60)
    sup.check(t0 + 1.5)  # up for 0.3 s only: the delay doubles
    assert said[-1] == "worker exited (code 70); restarting in 2s"
    sup.check(t0 + 3.6)
    assert sup.restarts == {"worker": 2}
    svc.proc.wait(60)
    assert runs.read_text() == "xxx"  # really ran three times
    assert (tmp_path / "logs" / "worker.log").exists()


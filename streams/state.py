"""Per-user attribution state machine: pure functions, no I/O.

One user's whole state (dedupe ids, touches, first-time-only names, held events) lives in ONE plain dict so the
worker writes one changelog record per event. Time is always passed in (``now`` = the delivery's ``received_at`` or a
tick's time), never read from a clock, so re-processing a message after a crash computes the same result.

Idempotency: every dedupe entry remembers the source ``(partition, offset)`` that first carried the event id, and
every held event remembers the message that last emitted it. A message re-processed after a crash (state already
written, outputs maybe not) finds its own ref and **re-emits** what it emitted the first time instead of being dropped
as its own duplicate.

State layout (kept short: it is serialized on every event)::

    {"p": partition, "c": clock_ms, "l": last_activity_ms,
     "s": {event_id: [expires_ms, partition, offset]},          # dedupe window
     "t": [touch, ...],                                         # sorted by event_time, bounded
     "o": {first_time_only_name: event_id},
     "h": [{"e": canonical, "st": "p|t|f|c", "r": [p, off], "at": ms, "dl": deadline_ms, "v": version}, ...]}

Held statuses: ``p`` pending (waiting for an install), ``t`` emitted as pending_timeout (kept for a correction),
``f`` flushed after the install, ``c`` corrected; ``f``/``c`` are kept only for the re-emit grace period.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.canonical import TOUCH_FIELDS

State = dict[str, Any]
Ref = tuple[int, int]  # (partition, offset) of the source message

INSTALL_TYPES = frozenset({"install", "reinstall"})
# Events that carry their own attribution: never buffered, they update the touches.
TOUCH_TYPES = frozenset({"install", "reinstall", "reattribution", "reengagement"})
# Events that never wait for an install (they precede it naturally).
NO_WAIT_TYPES = TOUCH_TYPES | {"click"}
MAX_TOUCHES = 16

# Output kinds (metrics label them; the enriched record carries status and version).
EVENT, FLUSHED, TIMEOUT = "event", "flushed", "timeout"
CORRECTION, OVERFLOW, REEMIT = "correction", "overflow", "reemit"


@dataclass(frozen=True)
class Limits:
    dedupe_retention_ms: int = 7 * 86_400_000
    pending_timeout_ms: int = 24 * 3_600_000
    max_pending_per_user: int = 100
    reemit_grace_ms: int = 15 * 60_000
    state_retention_ms: int = 90 * 86_400_000


@dataclass(frozen=True)
class Rules:
    """A source's event rules; names compare case-insensitively against event_name and event_type."""

    allowlist: frozenset[str] = frozenset()  # empty = every event allowed
    first_time_only: frozenset[str] = frozenset()

    def allowed(self, ev: dict[str, Any]) -> bool:
        return not self.allowlist or _names(ev) & self.allowlist != set()

    def once_name(self, ev: dict[str, Any]) -> str | None:
        if not self.first_time_only:  # most sources: no names to build
            return None
        hit = _names(ev) & self.first_time_only
        return min(hit) if hit else None


def _names(ev: dict[str, Any]) -> set[str]:
    return {str(ev.get("event_name") or "").lower(), str(ev.get("event_type") or "").lower()}


@dataclass
class Result:
    """What one step did: outputs in emission order plus counters for metrics."""

    outputs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    duplicates: int = 0
    filtered: int = 0
    buffered: int = 0
    replayed: int = 0
    changed: bool = False  # the state needs writing (duplicates and replays change nothing)
    delete: bool = False  # the whole user state expired


def new_state(partition: int) -> State:
    return {"p": partition, "c": 0, "l": 0, "s": {}, "t": [], "o": {}, "h": []}


# --- enrichment -----------------------------------------------------------------------------------------------------


def _touch(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: ev.get(k) for k in TOUCH_FIELDS}


def _organic(t: dict[str, Any]) -> bool:
    return bool(t.get("is_organic")) or str(t.get("media_source") or "").lower() == "organic"


def _carries_touch(ev: dict[str, Any]) -> bool:
    if ev.get("event_type") in TOUCH_TYPES:
        return True
    # An open carrying (non-organic) attribution is a re-engagement touch too.
    return ev.get("event_type") == "open" and bool(ev.get("media_source")) and not _organic(ev)


def touches_for(state: State, event_time: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(first_touch, last_touch) for an event at ``event_time``: the latest install/reinstall at or before it (else
    the earliest one), and the latest touch of any kind at or before it (else the first touch)."""
    first = last = earliest_install = None
    for t in state["t"]:  # sorted by event_time
        is_install = t["event_type"] in INSTALL_TYPES
        if is_install and earliest_install is None:
            earliest_install = t
        if t["event_time"] <= event_time:
            last = t
            if is_install:
                first = t
    first = first or earliest_install
    return first, last or first


def has_install(state: State) -> bool:
    return any(t["event_type"] in INSTALL_TYPES for t in state["t"])


def enrich(state: State, ev: dict[str, Any], version: int = 1, status: str | None = None) -> dict[str, Any]:
    first, last = touches_for(state, ev["event_time"])
    if status is None:
        touch = last or first
        status = "unattributed" if touch is None else "organic" if _organic(touch) else "attributed"
    return {**ev, "first_touch": first, "last_touch": last, "attribution_status": status, "version": version}


# --- steps ----------------------------------------------------------------------------------------------------------


def _expire(state: State, now: int, limits: Limits) -> bool:
    """Advance the clock; drop expired dedupe ids and held events past their keep time. True if anything went."""
    state["c"] = max(state["c"], now)
    clock = state["c"]
    seen = state["s"]
    changed = False
    if any(v[0] <= clock for v in seen.values()):
        changed = True
        state["s"] = {k: v for k, v in seen.items() if v[0] > clock}
        live = set(state["s"])
        state["o"] = {n: e for n, e in state["o"].items() if e in live}
    held = state["h"]
    if held and (any(h["st"] in "fc" and h["at"] + limits.reemit_grace_ms <= clock for h in held) or any(
        h["st"] == "t" and h["at"] + limits.dedupe_retention_ms <= clock for h in held
    )):
        state["h"] = [h for h in held if not (
            (h["st"] in "fc" and h["at"] + limits.reemit_grace_ms <= clock)
            or (h["st"] == "t" and h["at"] + limits.dedupe_retention_ms <= clock))]
        changed = True
    return changed


def _add_touch(state: State, ev: dict[str, Any]) -> None:
    ts = state["t"]
    if any(t["event_id"] == ev["event_id"] for t in ts):
        return
    ts.append(_touch(ev))
    ts.sort(key=lambda t: (t["event_time"], t["event_id"]))
    if len(ts) > MAX_TOUCHES:  # keep the earliest install (the first touch) and the latest ones
        keep0 = next((t for t in ts if t["event_type"] in INSTALL_TYPES), ts[0])
        state["t"] = [keep0] + [t for t in ts[-(MAX_TOUCHES - 1):] if t is not keep0]


def _release(state: State, ref: Ref, now: int, res: Result) -> None:
    """An install is known: emit pending events enriched (event-time order) and correct timed-out ones."""
    waiting = sorted((h for h in state["h"] if h["st"] in "pt"),
                     key=lambda h: (h["e"]["event_time"], h["e"]["event_id"]))
    for h in waiting:
        if h["st"] == "p":
            h.update(st="f", r=list(ref), at=now, v=1)
            res.outputs.append((FLUSHED, enrich(state, h["e"], 1)))
        else:
            h.update(st="c", r=list(ref), at=now, v=h["v"] + 1)
            res.outputs.append((CORRECTION, enrich(state, h["e"], h["v"])))


def _reemit_held(state: State, ref: Ref, res: Result) -> None:
    done = {o["event_id"] for _, o in res.outputs}
    for h in sorted((h for h in state["h"] if h["r"] == list(ref)),
                    key=lambda h: (h["e"]["event_time"], h["e"]["event_id"])):
        if h["st"] == "p" or h["e"]["event_id"] in done:
            continue
        status = "pending_timeout" if h["st"] == "t" else None
        res.outputs.append((REEMIT, enrich(state, h["e"], h["v"], status)))


def pending_count(state: State) -> int:
    return sum(1 for h in state["h"] if h["st"] == "p")


def next_deadline(state: State) -> int | None:
    return min((h["dl"] for h in state["h"] if h["st"] == "p"), default=None)


def apply_events(state: State, events: list[dict[str, Any]], ref: Ref, now: int, limits: Limits, rules: Rules,
                 room: int) -> Result:
    """Apply one delivery's canonical events (all from message ``ref``) to ``state`` in place.

    ``room`` is how many more events the worker-wide pending buffer may take (the per-user bound is in limits)."""
    res = Result()
    res.changed = _expire(state, now, limits)
    _time_out(state, ref, res)
    res.changed |= bool(res.outputs)
    state["l"] = max(state["l"], now)
    replay = False
    seen = state["s"]
    r = [ref[0], ref[1]]
    for ev in events:
        eid = ev["event_id"]
        hit = seen.get(eid)
        if hit is not None:
            if hit[1:] == r:  # our own earlier run of this message: emit again, don't drop
                replay = True
                res.replayed += 1
                _reemit_own(state, ev, rules, res)
            else:
                res.duplicates += 1
            continue
        seen[eid] = [now + limits.dedupe_retention_ms, ref[0], ref[1]]
        res.changed = True
        if not rules.allowed(ev):
            res.filtered += 1
            continue
        name = rules.once_name(ev)
        if name is not None:
            if name in state["o"]:
                res.filtered += 1
                continue
            state["o"][name] = eid
        etype = ev.get("event_type")
        if _carries_touch(ev):
            _add_touch(state, ev)
        if etype in NO_WAIT_TYPES or has_install(state):
            res.outputs.append((EVENT, enrich(state, ev)))
            if etype in INSTALL_TYPES:
                _release(state, ref, now, res)
        elif pending_count(state) < limits.max_pending_per_user and room > 0:
            state["h"].append({"e": ev, "st": "p", "r": r, "at": now, "dl": now + limits.pending_timeout_ms, "v": 1})
            res.buffered += 1
            room -= 1
        else:
            res.outputs.append((OVERFLOW, enrich(state, ev, 1, "unattributed")))
    if replay:
        _reemit_held(state, ref, res)
    return res


def _reemit_own(state: State, ev: dict[str, Any], rules: Rules, res: Result) -> None:
    """Re-emit the output of an event whose message is being re-processed (nothing if it is still waiting or was
    filtered; held events emitted by this message come from _reemit_held)."""
    eid = ev["event_id"]
    if any(h["e"]["event_id"] == eid for h in state["h"]):
        return  # pending, or emitted by another message (re-emitted when that one replays)
    if not rules.allowed(ev):
        return
    name = rules.once_name(ev)
    if name is not None and state["o"].get(name) != eid:
        return  # a first-time-only repeat that was dropped
    res.outputs.append((REEMIT, enrich(state, ev)))


def _time_out(state: State, ref: Ref, res: Result) -> None:
    if not state["h"]:  # most users: nothing held
        return
    due = sorted((h for h in state["h"] if h["st"] == "p" and h["dl"] <= state["c"]),
                 key=lambda h: (h["e"]["event_time"], h["e"]["event_id"]))
    for h in due:
        h.update(st="t", r=[ref[0], ref[1]], at=state["c"], v=1)
        res.outputs.append((TIMEOUT, enrich(state, h["e"], 1, "pending_timeout")))


def apply_tick(state: State, ref: Ref, now: int, limits: Limits) -> Result:
    """Time passes for this user (a tick record at ``ref``): time out pending events, expire old entries."""
    res = Result()
    res.changed = _expire(state, now, limits)
    _reemit_held(state, ref, res)
    n = len(res.outputs)
    _time_out(state, ref, res)
    res.changed |= len(res.outputs) > n
    if not state["h"] and not state["s"] and state["l"] + limits.state_retention_ms <= state["c"]:
        res.delete = True
    return res

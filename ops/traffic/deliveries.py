"""Realistic deliveries for ``attrib send``: the MMP sample shapes in ingest/templates/ with fresh users, fresh event
ids and current timestamps. Each simulated user gets an install and later events that share its device ids (so they
meet on one partition); a share of users has a later event sent *before* its install (out of order), and a share of
deliveries is sent twice byte for byte (a sender's retry). One user's deliveries name one app (the samples each
carry their own app id). Pure: signing and sending live in send.py."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from attrib.settings import SourceSettings
from ingest.verify import Outbound

TEMPLATES = Path(__file__).resolve().parent / "templates"
INSTALL_TYPES = frozenset({"install", "reinstall"})
ID_KEYS = frozenset({"id", "event_id", "click_id", "transaction_id"})
APP_KEYS = ("app_id", "app_guid", "store_id", "bundle_id")  # what the normalizers read as the app (top level)
_TIME_KEY = re.compile(r"(time|timestamp|_at$|_on$|_at_ms$|^ts$|date)", re.I)
_AF_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
_AF_LOCAL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}([+-])(\d\d)(\d\d)$")  # *_selected_timezone


@dataclass(frozen=True)
class Template:
    sample_id: str
    mmp: str
    method: str
    content_type: str | None
    headers: dict[str, str]
    body: Any
    query: list[tuple[str, str]] | None
    event_type: str
    user_ids: dict[str, str]  # id type -> the template's value (as it appears in the body/query)

    @property
    def app_id(self) -> str | None:
        fields = dict(self.query or ()) | (self.body if isinstance(self.body, dict) else {})
        return next((str(fields[k]) for k in APP_KEYS if fields.get(k)), None)

    @property
    def is_install(self) -> bool:
        return self.event_type in INSTALL_TYPES

    @property
    def platform(self) -> str | None:
        """From the device ids: a simulated user stays on one platform, so its ids (and key) stay consistent."""
        if self.user_ids.keys() & {"idfv", "idfa"}:
            return "ios"
        if self.user_ids.keys() & {"gaid", "android_id", "oaid"}:
            return "android"
        return None


@cache
def templates(mmp: str) -> tuple[Template, ...]:
    out = []
    for f in sorted(TEMPLATES.glob("*.json")):
        d = json.loads(f.read_text())
        if d["mmp"] != mmp:
            continue
        ids = dict(c.split(":", 1) for c in d["user_ids"])
        qs = d.get("raw_query_string")
        out.append(Template(d["sample_id"], d["mmp"], d["method"], d["content_type"], d["headers"], d["body"],
                            parse_qsl(qs, keep_blank_values=True) if qs is not None else None, d["event_type"], ids))
    return tuple(out)


def usable(src: SourceSettings) -> tuple[Template, ...]:
    """The templates of the source's MMP that use a method the source accepts."""
    return tuple(t for t in templates(src.mmp) if t.method in src.methods)


# -- shapes ----------------------------------------------------------------------------------------------------------
def like(value: str, rng: random.Random) -> str:
    """A random value of the same shape: digits stay digits, hex stays hex (same case); other letters and a prefix
    up to the last ``_`` (``evt_``, ``u_``) are kept."""
    head, sep, tail = value.rpartition("_")
    out = [head + sep]
    for ch in tail:
        if ch.isdigit():
            out.append(rng.choice("0123456789"))
        elif ch in "abcdef":
            out.append(rng.choice("0123456789abcdef"))
        elif ch in "ABCDEF":
            out.append(rng.choice("0123456789ABCDEF"))
        else:
            out.append(ch)
    return "".join(out)


def new_user(tpls: tuple[Template, ...], rng: random.Random) -> dict[str, str]:
    """One simulated user: a value per id type its templates use."""
    user: dict[str, str] = {}
    for t in tpls:
        for kind, value in t.user_ids.items():
            if kind not in user:
                user[kind] = f"u_{rng.getrandbits(48):012x}" if kind == "customer_user_id" else like(value, rng)
    return user


def _time_like(old: Any, now: float) -> Any:
    s = str(old)
    if isinstance(old, (int, str)) and s.isdigit():
        if len(s) == 13:
            v: Any = int(now * 1000)
        elif len(s) == 10:
            v = int(now)
        else:
            return old
        return v if isinstance(old, int) else str(v)
    if isinstance(old, str) and _AF_TIME.match(old):
        return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]
    if isinstance(old, str) and (m := _AF_LOCAL.match(old)):  # the same moment in the sample's own offset
        sign, hh, mm = m.groups()
        tz = timezone((-1 if sign == "-" else 1) * timedelta(hours=int(hh), minutes=int(mm)))
        return datetime.fromtimestamp(now, tz).strftime("%Y-%m-%d %H:%M:%S.%f")[:23] + old[-5:]
    if isinstance(old, str) and _ISO_TIME.match(old):
        return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z"
    if isinstance(old, str) and re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", old):
        return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return old


def _subst(value: Any, key: str, mapping: dict[str, str], now: float, rng: random.Random) -> Any:
    if isinstance(value, dict):
        return {k: _subst(v, k, mapping, now, rng) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, key, mapping, now, rng) for v in value]
    if isinstance(value, str) and value.lower() in mapping:
        new = mapping[value.lower()]
        return new.upper() if value.isupper() else new
    if key in ID_KEYS and isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
        new_id = like(str(value), rng)
        return int(new_id) if isinstance(value, int) else new_id
    if _TIME_KEY.search(key) and isinstance(value, (str, int)) and not isinstance(value, bool):
        return _time_like(value, now)
    return value


def render(t: Template, user: dict[str, str], source: str, now: float, rng: random.Random,
           app_id: str | None = None) -> Outbound:
    """One unsigned delivery of template ``t`` for ``user`` at time ``now``; ``app_id`` replaces the sample's own."""
    mapping = {orig.lower(): user[kind] for kind, orig in t.user_ids.items() if kind in user}
    headers = dict(t.headers)
    out = Outbound(t.method, f"/webhooks/{source}", headers=headers)

    def app(k: str, v: Any) -> Any:
        return app_id if app_id and k in APP_KEYS and v else v

    if t.query is not None:
        pairs = [(k, app(k, _subst(v, k, mapping, now, rng))) for k, v in t.query]
        out.raw_query = urlencode(pairs, quote_via=quote)
    if t.body is not None:
        body = _subst(t.body, "", mapping, now, rng)
        if isinstance(body, dict):
            body = {k: app(k, v) for k, v in body.items()}
        out.body = json.dumps(body, ensure_ascii=False, separators=(", ", ": ")).encode()
        headers["Content-Type"] = t.content_type or "application/json"
    return out


# -- a traffic plan ----------------------------------------------------------------------------------------------------
@dataclass
class Planned:
    out: Outbound
    user: int
    event_type: str
    duplicate: bool = False
    out_of_order: bool = False


def source_seed(seed: int | None, source: str) -> int | None:
    """The random stream of one source in a run seeded ``seed``: distinct per (seed, source), so two sources, or two
    runs with different seeds, never replay each other's users and event ids (which the pipeline would dedupe away)."""
    if seed is None:
        return None
    return int.from_bytes(hashlib.sha256(f"{seed}/{source}".encode()).digest()[:8], "big")


def app_for(src: SourceSettings, installs: list[Template], platform: str) -> str | None:
    """The one app a simulated user's deliveries name: the source's ``app_id`` when configured, else the app of the
    first install sample on the user's platform (samples of one MMP come from different apps)."""
    return src.app_id or next((t.app_id for t in installs if t.app_id and (t.platform or "") == platform),
                              next((t.app_id for t in installs if t.app_id), None))


def plan(src: SourceSettings, count: int, duplicates: float = 0.0, out_of_order: float = 0.0,
         seed: int | None = None, now: float | None = None, events_per_user: tuple[int, int] = (1, 3),
         spacing_s: float = 0.0) -> list[Planned]:
    """``count`` deliveries for ``src``. Users are generated until the count is reached; each has an install then
    1–3 later events (event time after the install's); ``out_of_order`` is the share of users whose first later
    event is sent before the install (exactly, among users with a later event that is not an install: an MMP with
    install samples only has none); ``duplicates`` the share of deliveries re-sent identically right after.
    ``spacing_s``: the deliveries go out this far apart (a paced run). Each delivery's event time is its planned send
    moment (``now`` + its slot x ``spacing_s``), moved earlier only where the user's event order needs it (an install
    sent after its purchase, or an unpaced run where all slots are ``now``): never after it is sent."""
    tpls = usable(src)
    if not tpls:
        raise ValueError(f"no {src.mmp} sample uses a method source {src.name!r} accepts ({', '.join(src.methods)})")
    # a user's deliveries must carry its ids to meet on one key: templates without any (e.g. Linkrunner's minimal
    # install) only when the MMP has nothing else
    keyed = [t for t in tpls if t.user_ids] or list(tpls)
    installs_all = [t for t in keyed if t.is_install] or list(keyed)
    # later events: not clicks (they precede the install and carry no install-scoped device id)
    events_all = [t for t in keyed if not t.is_install and t.event_type != "click"] or list(installs_all)
    platforms = sorted({t.platform or "" for t in installs_all})
    rng = random.Random(seed)
    now = time.time() if now is None else now
    out: list[Planned] = []
    uid = 0
    owed = rng.random() * out_of_order  # a random phase: which users are out of order varies with the seed
    while len(out) < count:
        platform = rng.choice(platforms)
        installs = [t for t in installs_all if t.platform in (platform or None, None)] or installs_all
        events = [t for t in events_all if not platform or t.platform in (platform, None)] or installs
        user = new_user((*installs, *events), rng)
        app_id = app_for(src, installs_all, platform)
        # in event order: the install, then 1-3 later events
        tpls_u = [rng.choice(installs), *(rng.choice(events) for _ in range(rng.randint(*events_per_user)))]
        gaps = [rng.uniform(1, 5) for _ in tpls_u]  # an event is stamped at least this far before the one after it
        order = list(range(len(tpls_u)))  # send order, as indices into tpls_u
        room = count - len(out)
        ooo = False
        if len(tpls_u) > 1 and not tpls_u[1].is_install and room >= 2:  # the install must fit after it
            owed += out_of_order  # exactly the requested share of the users that can be out of order, not ~it
            if owed >= 1 - 1e-9:
                owed -= 1
                order[0], order[1] = 1, 0  # e.g. the purchase arrives before the install
                ooo = True
        # each delivery's send slot; a duplicate takes the slot after its original (drawn before rendering, so the
        # stamps can follow the slots)
        slot, sent_at, dup = len(out), [0.0] * len(tpls_u), [False] * len(tpls_u)
        for j, i in enumerate(order):
            sent_at[i] = now + slot * spacing_s
            slot += 1
            dup[i] = slot < count - (ooo and j == 0) and rng.random() < duplicates
            slot += dup[i]
        # stamp at send time: each event at its own send moment, moved earlier only to keep the user's event order
        # (an out-of-order purchase's install is stamped just before the purchase): never after it is sent
        at = list(sent_at)
        for i in range(len(at) - 2, -1, -1):
            at[i] = min(at[i], at[i + 1] - gaps[i])
        for j, i in enumerate(order):
            if len(out) >= count:
                break
            t = tpls_u[i]
            p = Planned(render(t, user, src.name, at[i], rng, app_id), uid, t.event_type, out_of_order=ooo and j == 0)
            out.append(p)
            if dup[i]:
                out.append(Planned(p.out, uid, p.event_type, duplicate=True))
        uid += 1
    return out

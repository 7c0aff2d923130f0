"""Slack Block Kit messages for alerts and qualified-install pings. Pure: a record in, a webhook payload out.

Every payload goes through :func:`fit`, which enforces Slack's documented limits (50 blocks; header plain_text
<= 150 chars; section text <= 3000; <= 10 fields of <= 2000; context <= 10 elements; fallback text kept < 4000).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION = 3000
MAX_FIELDS = 10
MAX_FIELD = 2000
MAX_CONTEXT = 10
MAX_TEXT = 3000
MAX_BUTTON_URL = 3000
ICON = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


def _cut(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _ts(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v
    return datetime.fromtimestamp(int(v) / 1000, tz=UTC)


def _hm(v: Any) -> str:
    return _ts(v).strftime("%H:%M")


def _span(a: Any, b: Any) -> str:
    x, y = _ts(a), _ts(b)
    day = x.strftime("%Y-%m-%d")
    return f"{day} {_hm(x)}–{_hm(y)} UTC" if x.date() == y.date() else f"{day} {_hm(x)} – {y:%Y-%m-%d %H:%M} UTC"


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 or x == int(x) else f"{x:,.1f}"


def magnitude(observed: float, expected: float) -> str:
    """'−92%' for drops, '×3.1' for spikes (x-fold reads better than +210%)."""
    if expected <= 0:
        return f"+{_num(observed)}"
    r = observed / expected
    return f"×{r:.1f}" if r >= 2 else f"{(r - 1) * 100:+.0f}%".replace("-", "−")


BARS = "▁▂▃▄▅▆▇█"


def sparkline(points: list[list[float]], width: int = 36) -> str:
    """Observed counts as a Unicode sparkline over the expected band (expected ± 2 sd): three aligned rows, the
    marks row saying where a bucket left the band (^ above, v below)."""
    pts = [p for p in points if len(p) >= 3][-width:]
    if not pts:
        return ""
    top = max(1.0, *(o for o, _, _ in pts), *(e + 2 * sd for _, e, sd in pts))

    def bar(v: float) -> str:
        return BARS[min(len(BARS) - 1, max(0, round(v / top * (len(BARS) - 1))))]

    obs = "".join(bar(o) for o, _, _ in pts)
    exp = "".join(bar(e) for _, e, _ in pts)
    marks = "".join("^" if o > e + 2 * sd else "v" if o < max(0.0, e - 2 * sd) else " " for o, e, sd in pts)
    return f"observed {obs}\nexpected {exp}\n         {marks.rstrip()}"


def rarity_text(p: float | None, bucket_s: int) -> str:
    """A calibrated per-bucket rarity as a phrase: 'rarer than once a month here'."""
    if not p or p <= 0:
        return ""
    days = bucket_s / p / 86400
    if days >= 365:
        return "rarer than once a year here"
    for limit, unit, size in ((30, "month", 30), (7, "week", 7), (1, "day", 1)):
        if days >= limit:
            n = days / size
            return f"rarer than once a {unit} here" if n < 2 else f"rarer than once in {n:.0f} {unit}s here"
    hours = days * 24
    return f"about once in {hours:.0f} hours here" if hours >= 2 else "common for this series"


def scope_text(a: dict[str, Any]) -> str:
    app = a.get("app_id") or "(no app)"
    if a.get("scope") == "platform":
        return f"app={app} · all sources · {a.get('event_type')}"
    return f"app={app} · source={a.get('media_source')} · {a.get('event_type')}"


def _sql_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_time(v: Any) -> str:
    return f"toDateTime64('{_ts(v):%Y-%m-%d %H:%M:%S}', 3, 'UTC')"


def investigate_sql(a: dict[str, Any], database: str, bucket_s: int) -> str:
    """Counts per bucket around the incident from the analysts' events table, silent buckets filled with zeros
    (WITH FILL), times written as times."""
    start = _ts(a["bucket_start"]).timestamp() - 6 * 3600
    end = _ts(a["bucket_end"]).timestamp() + 3600  # the incident's end (a resolved row's bucket_end)
    start, end = start - start % bucket_s, end - end % bucket_s + bucket_s
    where = [f"app_id = {_sql_str(a.get('app_id') or '')}", f"event_type = {_sql_str(a.get('event_type') or '')}"]
    if a.get("scope") != "platform" and a.get("media_source") is not None:
        where.append(f"media_source = {_sql_str(a['media_source'])}")
    lo, hi = _sql_time(start * 1000), _sql_time(end * 1000)
    where += [f"event_time >= {lo}", f"event_time < {hi}"]
    platform = a.get("scope") == "platform"
    fill = f"WITH FILL FROM toStartOfInterval({lo}, INTERVAL {bucket_s} SECOND) TO {hi} STEP INTERVAL {bucket_s} SECOND"
    return (f"SELECT toStartOfInterval(event_time, INTERVAL {bucket_s} SECOND) AS bucket, "
            f"{'media_source, ' if platform else ''}count() AS n\n"
            f"FROM {database}.events FINAL\nWHERE " + "\n  AND ".join(where) +
            f"\nGROUP BY bucket{', media_source' if platform else ''}\n"
            f"ORDER BY {'media_source, ' if platform else ''}bucket {fill}")


def feed_text(feeds: list[list[str]], ops_url: str | None) -> str:
    """Who delivers this feed (MMP and ingress source) and where to see what the ingress refused from them: "they
    stopped sending" and "we refuse them" look the same in the counts."""
    if not feeds:
        return ""
    who = ", ".join(f"{mmp or '?'} (ingress source `{src}`)" for src, mmp in feeds)
    if not ops_url:
        return who
    base = ops_url.rstrip("/")
    links = " · ".join(f"<{base}/ops/rejections?source={quote(src, safe='')}|refused from {src}>" for src, _ in feeds)
    return f"{who}\n{links}"


def alert_message(a: dict[str, Any], *, database: str, bucket_s: int, dashboard_url: str | None = None,
                  ops_url: str | None = None) -> dict[str, Any]:
    """A firing / repeated / resolved alert, verdict first."""
    detail = _detail(a)
    if detail.get("method") == "arrivals":
        return arrivals_message(a, detail, ops_url)
    sev = str(a.get("severity", "warning"))
    obs, exp = float(a["observed"]), float(a["expected"])
    types = "+".join(map(str, detail.get("event_types") or [a.get("event_type")]))
    what = f"{types} {'SPIKE' if a['direction'] == 'spike' else 'DROP'} {magnitude(obs, exp)}"
    app = a.get("app_id") or "(no app)"
    feeds = [list(map(str, f)) for f in detail.get("feeds") or [] if isinstance(f, list) and len(f) == 2]
    mmps = sorted({m for _, m in feeds if m})
    via = f" via {', '.join(mmps)}" if mmps else ""
    who = (f"{app} · all sources" if a.get("scope") == "platform" else f"{app} · {a.get('media_source')}") + via
    rare = rarity_text(a.get("p_value"), int(detail.get("bucket_s") or bucket_s))
    spark = sparkline(detail.get("spark") or [])
    end = a["bucket_end"]  # event time; resolved_at is when the evaluator decided it
    span = _span(a["bucket_start"], end)
    if a["state"] == "resolved":
        mins = int((_ts(end) - _ts(a["bucket_start"])).total_seconds() // 60)
        diff = obs - exp
        word = "excess" if diff > 0 else "shortfall"
        head = f"✅ RESOLVED · {what} · {who}"
        text = f"[RESOLVED] {what} · {scope_text(a)} · {span} · {mins} min, {word} ≈ {_num(abs(diff))}"
        fields = [("Duration", f"{mins} min ({detail.get('buckets', '?')} buckets)"),
                  (word.capitalize(), f"≈ {_num(abs(diff))} events ({_num(obs)} observed vs {_num(exp)} expected)"),
                  ("Scope", scope_text(a)), ("Window", span)]
    else:
        again = " (still firing)" if detail.get("repeat") else ""
        head = f"{ICON.get(sev, '⚪')} {sev.upper()} · {what} · {who}{again}"
        text = f"[{sev.upper()}] {what} · {scope_text(a)} · {span}{again}"
        p = a.get("p_value")
        fields = [("Observed vs expected", f"{_num(obs)} vs {_num(exp)} ({magnitude(obs, exp)})"),
                  ("How rare", rare or (f"p={p:.1e}" if p is not None else "?")),
                  ("Scope", scope_text(a)), ("Since", f"{span} ({detail.get('buckets', '?')} buckets)")]
        if len(detail.get("event_types") or []) > 1:
            fields.append(("Event types", f"{', '.join(map(str, detail['event_types']))} (one feed, one alert; "
                                          f"figures for {a.get('event_type')})"))
        if feeds:
            fields.append(("Feed", feed_text(feeds, ops_url)))
        if detail.get("sources"):
            fields.append(("Sources dropping together" if a["direction"] == "drop" else "Sources spiking together",
                           ", ".join(map(str, detail["sources"]))))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
    ]
    if spark:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*Last {len(detail['spark'])} "
                                                   f"buckets* (band = expected ± 2 sd)\n```{spark}```"}})
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Investigate*\n```" +
                                     investigate_sql(a, database, bucket_s) + "```"}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"alert `{a['alert_id']}` · {a['state']} · detector={detail.get('method', '?')} · "
            f"key=`{a.get('event_type')}:{a.get('app_id')}:{a.get('media_source') or '*'}:{a['direction']}`"}]},
    ]
    if dashboard_url:
        t0, t1 = _ts(a["bucket_start"]) - timedelta(hours=6), _ts(end) + timedelta(hours=1)
        url = dashboard_url.format(app_id=a.get("app_id") or "", media_source=a.get("media_source") or "",
                                   event_type=a.get("event_type") or "", start=int(t0.timestamp()),
                                   end=int(t1.timestamp()), start_iso=f"{t0:%Y-%m-%dT%H:%M:%SZ}",
                                   end_iso=f"{t1:%Y-%m-%dT%H:%M:%SZ}")
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Chart"}, "url": url}]})
    return fit({"text": text, "unfurl_links": False, "unfurl_media": False, "blocks": blocks})


MMP_NAMES = {"branch": "Branch", "appsflyer": "AppsFlyer", "adjust": "Adjust", "singular": "Singular",
             "kochava": "Kochava", "tenjin": "Tenjin", "linkrunner": "Linkrunner", "generic": "Webhook"}


def per_time(rate_per_min: float) -> str:
    """'~4/min', '~12/hour', '~3/day': the unit that gives a readable number."""
    for per, unit in ((1, "min"), (60, "hour"), (1440, "day")):
        x = rate_per_min * per
        if x >= 1 or unit == "day":
            return f"~{x:,.0f}/{unit}" if x >= 2 else f"~{x:.1f}/{unit}"
    raise AssertionError("unreachable")


def duration(s: float) -> str:
    """'40 s', '9 min', '5 h 12 min'."""
    m = int(s // 60)
    return f"{int(s)} s" if s < 60 else f"{m} min" if m < 120 else f"{m // 60} h {m % 60} min"


def arrivals_message(a: dict[str, Any], detail: dict[str, Any], ops_url: str | None) -> dict[str, Any]:
    """A source that stopped sending, judged from arrival at the ingress (alerts/arrivals.py): who (MMP, ingress
    source, app), how long, what is usual, and where to tell "they stopped" from "we refuse them"."""
    src, mmp = str(detail.get("source") or "?"), str(detail.get("mmp") or "")
    who = f"{MMP_NAMES.get(mmp, mmp or 'Source')} (source `{src}`)"
    app = f" · app={a['app_id']}" if a.get("app_id") else ""
    usual = per_time(float(detail.get("rate_per_min") or 0))
    silent = duration(float(detail.get("silent_s") or 0))
    since = _ts(a["bucket_start"])
    last = "last delivery" if detail.get("since_delivery", True) else "listening since"
    if a["state"] == "resolved":
        head = f"✅ RESOLVED · {who} is sending again{app}"
        text = f"[RESOLVED] {who} is sending again after {silent} of silence{app}"
        fields = [("Silent", f"{silent} ({_span(a['bucket_start'], a['resolved_at'] or a['bucket_end'])})"),
                  ("Usually", usual)]
    else:
        sev = str(a.get("severity", "critical"))
        head = f"{ICON.get(sev, '⚪')} {sev.upper()} · {who} stopped sending{app}"
        text = f"[{sev.upper()}] {who} stopped sending: nothing for {silent}, usually {usual}{app}"
        per_week = detail.get("per_week")
        rare = (f"a silence this long comes about once in {1 / per_week:,.0f} weeks at that rate"
                if isinstance(per_week, (int, float)) and per_week > 0 else "")
        fields = [("Nothing for", f"{silent} ({last} {since:%Y-%m-%d %H:%M} UTC)"), ("Usually", usual)]
        if rare:
            fields.append(("How rare", rare))
        check = ("Nothing *verified* arrived. If the ingress refused deliveries from this source, the sender is "
                 "there and we refuse it (credentials, IP allowlist, signature)")
        if ops_url:
            check += f": <{ops_url.rstrip('/')}/ops/rejections?source={quote(src, safe='')}|refused from {src}>"
        fields.append(("Check", check))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": head, "emoji": True}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
            f"alert `{a['alert_id']}` · {a['state']} · detector=arrivals (ingress heartbeats) · "
            f"budget {detail.get('false_alarms_per_week', '?')} false page/source-week"}]},
    ]
    return fit({"text": text, "unfurl_links": False, "unfurl_media": False, "blocks": blocks})


def pings_message(events: list[dict[str, Any]]) -> dict[str, Any]:
    """One info message for a batch of qualified installs."""
    n = len(events)
    what = f"{n} qualified install{'s' * (n != 1)}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": f"🔵 INFO · {what}"}}]
    lines = []
    for e in events:
        rev = f" · revenue {e['revenue']} {e.get('currency') or ''}".rstrip() if e.get("revenue") is not None else ""
        t = _ts(e["event_time"]).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"• *{e.get('app_id') or '-'}* · {e.get('media_source') or '-'} · campaign "
                     f"`{e.get('campaign') or '-'}`{rev} · {e.get('event_type')} at {t} · `{e.get('event_id')}`")
    for i in range(0, len(lines), 10):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines[i:i + 10])}})
    return fit({"text": f"[INFO] {what}", "unfurl_links": False,
                "unfurl_media": False, "blocks": blocks})


def _detail(a: dict[str, Any]) -> dict[str, Any]:
    try:
        d = json.loads(a.get("detail") or "{}")
        return d if isinstance(d, dict) else {}
    except ValueError:
        return {}


def _fit_text(obj: dict[str, Any], n: int) -> None:
    if isinstance(obj.get("text"), str):
        t = obj["text"]
        if len(t) > n:
            # keep an open ``` code fence closed so the cut message still renders
            cut = _cut(t, n - 4)
            obj["text"] = cut + "```" if cut.count("```") % 2 else cut


def fit(msg: dict[str, Any]) -> dict[str, Any]:
    """Clamp a payload to Slack's Block Kit limits (never raises; shortens text, drops overflow blocks)."""
    blocks = list(msg.get("blocks", []))
    if len(blocks) > MAX_BLOCKS:
        extra = len(blocks) - (MAX_BLOCKS - 1)
        more = {"type": "context", "elements": [{"type": "mrkdwn", "text": f"… {extra} more blocks not shown"}]}
        blocks = [*blocks[:MAX_BLOCKS - 1], more]
    for b in blocks:
        t = b.get("type")
        if t == "header":
            b["text"]["text"] = _cut(b["text"]["text"], MAX_HEADER)
        elif t == "section":
            if "text" in b:
                _fit_text(b["text"], MAX_SECTION)
            if "fields" in b:
                b["fields"] = b["fields"][:MAX_FIELDS]
                for f in b["fields"]:
                    _fit_text(f, MAX_FIELD)
        elif t == "context":
            b["elements"] = b["elements"][:MAX_CONTEXT]
            for e in b["elements"]:
                _fit_text(e, MAX_FIELD)
        elif t == "actions":
            b["elements"] = [e for e in b["elements"] if len(e.get("url", "")) <= MAX_BUTTON_URL][:25]
    blocks = [b for b in blocks if b.get("type") != "actions" or b["elements"]]
    return {**msg, "text": _cut(str(msg.get("text", "")), MAX_TEXT), "blocks": blocks}

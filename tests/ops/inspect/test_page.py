"""The inspector page in a real headless Chromium, fed by the real broker and a local rejection feed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import pytest

from attrib.topics import ensure_topics
from ops.inspect.server import serve
from tests.ops.inspect.cdp import Browser
from tests.ops.inspect.feeds import RejectionFeed, produce, raw_delivery, rejection
from tests.sinks.route.events import enriched
from tests.support import free_port

pytestmark = pytest.mark.timeout(180)

SECRET = "whsec-" + uuid.uuid4().hex  # a source's HMAC secret
TOKEN = "insp-" + uuid.uuid4().hex  # the inspector's own token
DEVICE = str(uuid.uuid4()).upper()  # an IDFA
GAID = str(uuid.uuid4())
BEARER = "tok-" + uuid.uuid4().hex  # a token field inside a payload
ROWS = "document.querySelectorAll('#rows tr')"


async def test_live_deliveries_filters_and_no_secrets(make_settings, chromium) -> None:
    feed = RejectionFeed([rejection("branch-main"), rejection("branch-main", "timestamp_too_old")])
    url = await feed.start()
    port = free_port()
    s = make_settings(
        topics={"partitions": 2},
        sources=[{"name": "branch-main", "mmp": "branch", "verify": ["hmac_body"], "secrets": [SECRET]},
                 {"name": "adjust-get", "mmp": "adjust", "methods": ["GET"]}],
        inspector={"enabled": True, "token": TOKEN, "rejections_url": url, "port": port})
    await asyncio.to_thread(ensure_topics, s)
    branch = [raw_delivery("branch-main", "branch", json.dumps({
        "name": "INSTALL" if i == 0 else "PURCHASE", "user_data": {"idfa": DEVICE, "os": "iOS"},
        "custom_data": {"echo": f"signed with {SECRET}", "access_token": BEARER, "n": i}}).encode(),
        user_key=f"idfa:{DEVICE}") for i in range(3)]
    adjust = [raw_delivery("adjust-get", "adjust", query=f"activity_kind=install&gps_adid={GAID}&city=K%C3%B6ln",
                           method="GET", user_key=f"gaid:{GAID}") for _ in range(2)]
    refs = await asyncio.to_thread(produce, s, s.topics.raw, "raw_delivery", branch + adjust)
    ev = enriched(raw={"topic": refs[0][0], "partition": refs[0][1], "offset": refs[0][2]}, event_type="install",
                  event_name="INSTALL")
    await asyncio.to_thread(produce, s, s.topics.events, "enriched_event", [ev])
    now = int(time.time() * 1000)
    await asyncio.to_thread(produce, s, s.topics.alerts_spike, "alert", [{
        "alert_id": "a1", "state": "firing", "direction": "spike", "severity": "critical", "scope": "branch-main",
        "app_id": None, "media_source": None, "event_type": "install", "observed": 420.0, "expected": 40.0,
        "bucket_start": now - 300_000, "bucket_end": now, "created_at": now, "resolved_at": None, "p_value": 1e-9,
        "detail": "{}"}])

    stop, started = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(s, stop, started=started))
    await started.wait()
    base = f"http://127.0.0.1:{port}/"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "api/deliveries") as r:
                assert r.status == 401
            async with http.get(base + "api/summary", headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401

        async with Browser(chromium) as b:
            await b.goto(base + "?token=" + TOKEN)
            assert await b.wait_for(f"{ROWS}.length === 7"), await b.eval(
                "document.getElementById('state').textContent + ' ' + document.documentElement.outerHTML.slice(0, 300)")
            # the worker's verdict shows on the accepted delivery it came from
            assert await b.wait_for(
                f"[...{ROWS}].some(tr => tr.children[8].textContent === 'install' "
                "&& tr.dataset.source === 'branch-main')")
            first = await b.eval(f"[...{ROWS}].map(tr => [...tr.children].map(td => td.textContent))")
            by_status: dict[str, list[Any]] = {}
            for cells in first:
                by_status.setdefault(cells[3], []).append(cells)
            assert len(by_status["accepted 200"]) == 5 and len(by_status["rejected 401"]) == 2
            acc = next(c for c in by_status["accepted 200"] if c[1] == "branch-main")
            assert acc[2] == "POST" and acc[4] == "passed" and acc[5] == "hmac_body" and acc[7] == f"idfa:{DEVICE[:4]}…"
            assert {c[5] for c in by_status["rejected 401"]} == {"signature_mismatch", "timestamp_too_old"}
            assert {c[4] for c in by_status["rejected 401"]} == {"failed"}
            adj = next(c for c in by_status["accepted 200"] if c[1] == "adjust-get")
            assert adj[2] == "GET" and adj[4] == "none"

            # a delivery arriving while the page is open shows up live
            late = raw_delivery("adjust-get", "adjust", query="activity_kind=session&city=Graz", method="GET")
            await asyncio.to_thread(produce, s, s.topics.raw, "raw_delivery", [late])
            assert await b.wait_for(f"{ROWS}.length === 8")
            assert await b.eval(f"{ROWS}[0].children[1].textContent") == "adjust-get"

            # filters
            await b.eval("(() => { const s = document.getElementById('f-source'); s.value = 'adjust-get';"
                         " s.dispatchEvent(new Event('change')); })()")
            assert await b.eval(f"[...{ROWS}].map(tr => tr.dataset.source)") == ["adjust-get"] * 3
            await b.eval("(() => { const s = document.getElementById('f-source'); s.value = '';"
                         " s.dispatchEvent(new Event('change'));"
                         " const t = document.getElementById('f-status'); t.value = 'rejected';"
                         " t.dispatchEvent(new Event('change')); })()")
            assert await b.eval(f"[...{ROWS}].map(tr => tr.dataset.status)") == ["rejected", "rejected"]
            await b.eval("(() => { const t = document.getElementById('f-status'); t.value = 'accepted';"
                         " t.dispatchEvent(new Event('change')); })()")
            assert await b.eval(f"{ROWS}.length") == 6

            # payload of a branch delivery and of an adjust GET, redacted
            await b.eval(f"[...{ROWS}].find(tr => tr.dataset.source === 'branch-main').click()")
            shown = await b.wait_for("document.getElementById('payload').textContent.includes('user_data') && "
                                     "document.getElementById('payload').textContent")
            assert '"idfa": "[device id]"' in shown and '"access_token": "[secret]"' in shown
            assert "signed with [secret]" in shown and '"os": "iOS"' in shown
            # not the late one
            await b.eval(f"[...{ROWS}].filter(tr => tr.dataset.source === 'adjust-get').pop().click()")
            shown = await b.wait_for("document.getElementById('payload').textContent.includes('gps_adid') && "
                                     "document.getElementById('payload').textContent")
            assert "gps_adid=[device id]" in shown and "city=Köln" in shown

            # chart and alerts
            assert await b.wait_for("document.querySelectorAll('#chart polyline').length === 2")
            legend = await b.eval("document.getElementById('legend').textContent")
            assert "adjust-get (" in legend and "branch-main (" in legend  # counts depend on minute boundaries
            points = await b.eval("[...document.querySelectorAll('#chart polyline')].map("
                                  "l => l.getAttribute('points').split(' ').length)")
            assert points == [60, 60]
            assert await b.wait_for("document.getElementById('alerts').textContent.includes('spike · critical')")
            assert "420" in await b.eval("document.getElementById('alerts').textContent")

            html = await b.eval("document.documentElement.outerHTML")
            for leak in (SECRET, TOKEN, DEVICE, DEVICE.lower(), GAID, BEARER):
                assert leak not in html
            assert "token=" not in await b.eval("location.href")

        # what the page could ever fetch holds no secret either
        async with aiohttp.ClientSession(headers={"Authorization": "Bearer " + TOKEN}) as http:
            async with http.get(base + "api/deliveries") as r:
                text = await r.text()
            assert len(json.loads(text)["rows"]) == 8
            for leak in (SECRET, TOKEN, DEVICE, DEVICE.lower(), GAID, BEARER):
                assert leak not in text
    finally:
        stop.set()
        await server
        await feed.stop()

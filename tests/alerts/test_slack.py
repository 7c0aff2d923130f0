"""Slack delivery against a real local HTTP server: pacing, 429 Retry-After, outages, rejected payloads, the repeat
policy, and Block Kit limits (hypothesis)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts import slack_blocks
from alerts.slack import Notifier, SlackPoster, SlackRejected, SlackUnavailable, qualifies
from attrib.errors import DependencyUnavailable, Permanent
from attrib.settings import QualifiedInstallRule, Settings
from tests.alerts.fake_slack import FakeSlack

MSG = {"text": "hello", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "hello"}}]}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    f = FakeSlack().start()
    yield f
    f.stop()


def alert(**over: Any) -> dict[str, Any]:
    base = {"alert_id": "a1", "state": "firing", "direction": "drop", "severity": "warning", "scope": "source",
            "app_id": "com.foo", "media_source": "googleadwords_int", "event_type": "install", "observed": 3.0,
            "expected": 480.0, "bucket_start": 1_793_541_900_000, "bucket_end": 1_793_542_800_000,
            "created_at": 1_793_543_400_000, "resolved_at": None, "p_value": 1e-9,
            "detail": json.dumps({"buckets": 3, "method": "daily"})}
    return {**base, **over}


async def test_429_is_retried_after_retry_after(slack: FakeSlack) -> None:
    slack.script = [(429, {"Retry-After": "1"}, "rate_limited")]
    async with aiohttp.ClientSession() as s:
        await SlackPoster(s, min_interval_s=0).post(slack.url + "/w", MSG)
    first, second = slack.requests
    assert (first.status, second.status) == (429, 200) and second.body == MSG
    assert second.at - first.at >= 1.0


async def test_slack_outage_is_retried_until_accepted(slack: FakeSlack) -> None:
    slack.script = [(500, {}, "oops"), (503, {}, "down")]
    waits: list[float] = []

    async def fake_sleep(s: float) -> None:
        waits.append(s)

    async with aiohttp.ClientSession() as s:
        await SlackPoster(s, min_interval_s=0, sleep=fake_sleep).post(slack.url + "/w", MSG)
    assert [r.status for r in slack.requests] == [500, 503, 200]
    assert waits == [1.0, 2.0]  # capped exponential backoff


async def test_unreachable_slack_is_retried(slack: FakeSlack) -> None:
    waits: list[float] = []
    port = slack.port
    slack.stop()

    async def fake_sleep(s: float) -> None:
        waits.append(s)
        if len(waits) == 3:
            raise RuntimeError("enough")

    async with aiohttp.ClientSession() as s:
        with pytest.raises(RuntimeError, match="enough"):
            await SlackPoster(s, min_interval_s=0, sleep=fake_sleep).post(f"http://127.0.0.1:{port}/w", MSG)
    assert waits == [1.0, 2.0, 4.0]
    slack.__post_init__()  # let the fixture's stop() run on a fresh server
    slack.start()


async def test_at_most_one_message_per_interval_per_webhook(slack: FakeSlack) -> None:
    async with aiohttp.ClientSession() as s:
        p = SlackPoster(s, min_interval_s=0.3)
        for _ in range(3):
            await p.post(slack.url + "/a", MSG)
        await p.post(slack.url + "/b", MSG)  # another webhook has its own pacing
    a = [r.at for r in slack.requests if r.path == "/a"]
    assert all(y - x >= 0.3 for x, y in itertools.pairwise(a))
    assert len(slack.accepted("/b")) == 1


async def test_slack_failures_map_to_the_project_errors_at_the_seam(slack: FakeSlack) -> None:
    slack.script = [(400, {}, "invalid_blocks"), (429, {"Retry-After": "0"}, "rate_limited"), (502, {}, "bad gw")]
    async with aiohttp.ClientSession() as s:
        p = SlackPoster(s, min_interval_s=0)
        with pytest.raises(SlackRejected) as rejected:
            await p.send_once(slack.url + "/w", MSG)
        with pytest.raises(SlackUnavailable) as limited:
            await p.send_once(slack.url + "/w", MSG)
        with pytest.raises(SlackUnavailable) as down:
            await p.send_once(slack.url + "/w", MSG)
        port = slack.port
        slack.stop()
        with pytest.raises(SlackUnavailable, match="unreachable"):
            await p.send_once(f"http://127.0.0.1:{port}/w", MSG)
    slack.__post_init__()
    slack.start()
    assert isinstance(rejected.value, Permanent) and "invalid_blocks" in str(rejected.value)
    assert isinstance(limited.value, DependencyUnavailable) and limited.value.retry_after_s == 0.0
    assert down.value.retry_after_s is None and "502" in str(down.value)


async def test_rejected_blocks_fall_back_to_plain_text(slack: FakeSlack) -> None:
    slack.script = [(400, {}, "invalid_blocks")]
    async with aiohttp.ClientSession() as s:
        await SlackPoster(s, min_interval_s=0).post(slack.url + "/w", MSG)
    assert slack.requests[1].body == {"text": "hello"}


async def test_repeat_policy_and_severity_routing(slack: FakeSlack) -> None:
    s = Settings(slack_webhook_url=slack.url + "/default",
                 alerts={"slack": {"webhooks": {"critical": slack.url + "/pages"}}})
    async with aiohttp.ClientSession() as sess:
        n = Notifier(s, SlackPoster(sess, min_interval_s=0))
        assert await n.alert(alert())
        assert not await n.alert(alert(bucket_end=1_793_542_800_000 + 600_000))  # 10 min later: too soon
        assert await n.alert(alert(bucket_end=1_793_542_800_000 + 3_600_000))  # an hour later: repeat
        assert await n.alert(alert(state="resolved", resolved_at=1_793_546_400_000))
        assert not await n.alert(alert(state="resolved", resolved_at=1_793_546_400_000))  # replayed resolve
        assert not await n.alert(alert(bucket_end=1_793_546_400_000 + 7_200_000))  # firing after its resolve
        assert await n.alert(alert(alert_id="p1", scope="platform", severity="critical", media_source=None))
    assert [r.path for r in slack.accepted()] == ["/default"] * 3 + ["/pages"]
    first, _, resolved, _ = (r.body for r in slack.accepted())
    assert first["text"].startswith("[WARNING] install DROP −99%") and "source=googleadwords_int" in first["text"]
    assert "RESOLVED" in resolved["text"] and "shortfall" in resolved["text"]
    sql = first["blocks"][2]["text"]["text"]
    assert "FROM attribution.events" in sql and "media_source = 'googleadwords_int'" in sql


def test_qualified_install_rule() -> None:
    rule = QualifiedInstallRule(campaigns=["vip"], min_revenue=10)
    assert qualifies(rule, {"event_type": "install", "campaign": "vip"})
    assert qualifies(rule, {"event_type": "install", "campaign": "x", "revenue": Decimal("10.000000000")})
    assert not qualifies(rule, {"event_type": "install", "campaign": "x", "revenue": Decimal("9.99")})
    assert not qualifies(rule, {"event_type": "purchase", "campaign": "vip"})
    assert not qualifies(QualifiedInstallRule(), {"event_type": "install", "campaign": "vip"})


# --- Block Kit limits -----------------------------------------------------------------------------------------------

def check_limits(msg: dict[str, Any]) -> None:
    assert msg["text"] and len(msg["text"]) <= 4000
    assert 0 < len(msg["blocks"]) <= 50
    for b in msg["blocks"]:
        if b["type"] == "header":
            assert b["text"]["type"] == "plain_text" and len(b["text"]["text"]) <= 150
        if b["type"] == "section":
            assert "text" in b or "fields" in b
            if "text" in b:
                assert len(b["text"]["text"]) <= 3000
            assert len(b.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in b.get("fields", []))
        if b["type"] == "context":
            assert len(b["elements"]) <= 10 and all(len(e["text"]) <= 2000 for e in b["elements"])
        if b["type"] == "actions":
            assert all(len(e["url"]) <= 3000 for e in b["elements"])
    json.dumps(msg)


texts = st.text(min_size=0, max_size=5000)


@given(app=texts, src=texts, et=texts, obs=st.floats(0, 1e9), exp=st.floats(0, 1e9),
       state=st.sampled_from(["firing", "resolved"]), scope=st.sampled_from(["source", "platform"]),
       sources=st.lists(texts, max_size=30), dash=st.one_of(st.none(), st.text(max_size=4000)),
       spark=st.lists(st.tuples(st.floats(0, 1e9), st.floats(0, 1e9), st.floats(0, 1e6)), max_size=80),
       p=st.floats(1e-300, 1.0))
@settings(max_examples=150, deadline=None)
def test_alert_messages_stay_within_block_kit_limits(app: str, src: str, et: str, obs: float, exp: float, state: str,
                                                     scope: str, sources: list[str], dash: str | None,
                                                     spark: list[tuple[float, float, float]], p: float) -> None:
    a = alert(app_id=app, media_source=src, event_type=et, observed=obs, expected=exp, state=state, scope=scope,
              resolved_at=1_793_546_400_000 if state == "resolved" else None, p_value=p,
              detail=json.dumps({"buckets": 3, "sources": sources, "spark": [list(x) for x in spark]}))
    d = None if dash is None else "https://x/" + dash.replace("{", "").replace("}", "")
    check_limits(slack_blocks.alert_message(a, database="attribution", bucket_s=300, dashboard_url=d))


@given(st.lists(st.fixed_dictionaries({"app_id": texts, "media_source": texts, "campaign": texts,
                                       "event_type": st.just("install"), "event_id": texts,
                                       "revenue": st.one_of(st.none(), st.decimals(0, 1e6, places=2)),
                                       "event_time": st.integers(0, 2**41)}), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_ping_batches_stay_within_block_kit_limits(events: list[dict[str, Any]]) -> None:
    check_limits(slack_blocks.pings_message(events))


def test_the_message_shows_the_series_names_the_app_and_says_how_rare() -> None:
    spark = [[50.0, 50.0, 8.0]] * 30 + [[2.0, 52.0, 8.0], [0.0, 53.0, 8.0]]
    a = alert(p_value=1e-6, detail=json.dumps({"buckets": 2, "method": "weekly", "spark": spark, "bucket_s": 300}))
    msg = slack_blocks.alert_message(a, database="attribution", bucket_s=300,
                                     dashboard_url="https://grafana.example/d?from={start_iso}&to={end_iso}")
    head = msg["blocks"][0]["text"]["text"]
    assert "com.foo" in head and "googleadwords_int" in head and "DROP" in head
    fields = " ".join(f["text"] for f in msg["blocks"][1]["fields"])
    assert "3 vs 480" in fields and "rarer than once a year here" in fields  # 300 s / 1e-6 = 9.5 years
    pic = msg["blocks"][2]["text"]["text"]
    rows = pic.split("```")[1].split("\n")
    assert rows[0].startswith("observed ") and rows[1].startswith("expected ") and rows[2].strip() == "vv"
    assert len(rows[0]) == len("observed ") + len(spark)
    sql = next(b["text"]["text"] for b in msg["blocks"] if "Investigate" in b.get("text", {}).get("text", ""))
    assert "WITH FILL" in sql and "toDateTime64('2026-11-01 " in sql and "1793" not in sql  # times, not epochs
    url = msg["blocks"][-1]["elements"][0]["url"]
    assert url.startswith("https://grafana.example/d?from=2026-11-01T") and "&to=2026-11-01T" in url
    assert slack_blocks.rarity_text(0.01, 300) == "about once in 8 hours here"
    assert slack_blocks.rarity_text(300 / (86400 * 10), 300) == "rarer than once a week here"
    assert slack_blocks.rarity_text(0.5, 300) == "common for this series"


def test_fit_caps_block_count() -> None:
    msg = slack_blocks.fit({"text": "x", "blocks": [{"type": "divider"}] * 80})
    assert len(msg["blocks"]) == 50 and "31 more" in msg["blocks"][-1]["elements"][0]["text"]


def test_notify_refuses_to_start_without_a_webhook_for_every_severity(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from alerts.slack import main

    s = Settings(alerts={"slack": {"webhooks": {"critical": "http://127.0.0.1:9/x"}}})
    assert main(argparse.Namespace(), s) == 2
    assert "ATTRIB_ALERTS__SLACK__WEBHOOKS__INFO" in capsys.readouterr().err

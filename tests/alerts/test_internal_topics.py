"""Every internal topic (the counts topic, the Faust tables' changelogs) exists before any app joins: `ensure_topics`,
which `attrib stack up`, `attrib run` and every service start call, creates them. A fresh start of every service at
once must not leave the counts partition unowned until a metadata refresh."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from attrib import kafka
from attrib.settings import Settings
from attrib.topics import ALERT_TABLES, WORKER_TABLES, counts_topic, ensure_topics


def test_internal_topics_exist_before_the_apps_start(make_settings: Callable[..., Settings]) -> None:
    tag = uuid.uuid4().hex[:8]
    s = make_settings(alerts={"app_id": f"alerts-it-{tag}"}, streams={"app_id": f"w-it-{tag}"},
                      topics={"partitions": 3})
    created = ensure_topics(s)
    one = {counts_topic(s), *(f"{s.alerts.app_id}-{t}-changelog" for t in ALERT_TABLES)}
    worker = {f"{s.streams.app_id}-{t}-changelog" for t in WORKER_TABLES}
    assert set(created) == one | worker | {*s.topics.all(), s.topics.arrivals}
    md = kafka.admin(s).list_topics(timeout=10).topics
    assert all(len(md[t].partitions) == 1 for t in one)
    assert all(len(md[t].partitions) == 3 for t in worker)
    assert ensure_topics(s) == []  # idempotent: a second service start creates nothing


def test_every_alerts_table_is_in_the_list_of_changelogs_created_up_front() -> None:
    from alerts import arrivals_agent
    from alerts.app import TABLES

    assert arrivals_agent.TABLE in ALERT_TABLES and TABLES == ALERT_TABLES

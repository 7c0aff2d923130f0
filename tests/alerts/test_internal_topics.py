"""`attrib alerts` creates its internal topics (counts, table changelogs) before the app joins: a fresh start of every
service at once must not leave the counts partition unowned until a metadata refresh."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from alerts.app import TABLES, counts_topic_name, ensure_internal_topics
from attrib import kafka
from attrib.settings import Settings


def test_internal_topics_exist_before_the_app_starts(make_settings: Callable[..., Settings]) -> None:
    s = make_settings(alerts={"app_id": f"alerts-it-{uuid.uuid4().hex[:8]}"})
    created = ensure_internal_topics(s)
    want = {counts_topic_name(s), *(f"{s.alerts.app_id}-{t}-changelog" for t in TABLES)}
    assert set(created) == want
    md = kafka.admin(s).list_topics(timeout=10).topics
    assert all(len(md[t].partitions) == 1 for t in want)
    assert ensure_internal_topics(s) == []  # idempotent: a second service start creates nothing

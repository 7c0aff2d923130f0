from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas.fields import loads
from schemas.templates import query_to_body
from schemas.user_key import candidates, user_key
from tests.schemas.conftest import sample_mmp, wire

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
MMPS = ["branch", "appsflyer", "adjust", "singular", "kochava", "tenjin", "linkrunner", "generic", "unknown"]


def test_candidates_match_sample(sample: dict[str, Any]) -> None:
    body, qs, _ct = wire(sample)
    mmp = sample_mmp(sample)
    fields = loads(body) if body else query_to_body(mmp, qs)
    assert candidates(mmp, fields) == sample["expected"]["user_key_candidates"]


def test_user_key_is_first_candidate_else_fingerprint(sample: dict[str, Any]) -> None:
    body, qs, ct = wire(sample)
    key = user_key(sample_mmp(sample), body, qs, ct, {})
    expected = sample["expected"]["user_key_candidates"]
    if expected:
        assert key == expected[0]
    else:
        assert key.startswith("fp:") and len(key) == 3 + 32


def test_fingerprint_key_ignores_key_order_and_whitespace() -> None:
    a = user_key("linkrunner", b'{"event_type":"install","campaign_id":"c1"}', "", "application/json", {})
    b = user_key("linkrunner", b'{ "campaign_id" : "c1",\n "event_type": "install" }', "", "application/json", {})
    c = user_key("linkrunner", b'{"event_type":"install","campaign_id":"c2"}', "", "application/json", {})
    assert a == b != c


def test_absent_ids_are_skipped() -> None:
    body = {"user_id": "u1", "gaid": "00000000-0000-0000-0000-000000000000", "idfa": "null"}
    assert user_key("linkrunner", json.dumps(body).encode(), "", "application/json", {}) == "customer_user_id:u1"
    assert user_key("adjust", b"", "adid=&gps_adid=NULL&idfa=ABC", None, {}) == "idfa:abc"


def test_configured_query_names() -> None:
    opts = {"query_map": {"dev": "user_data.idfv"}}
    assert user_key("branch", b"", "dev=AB-CD&event=OPEN", None, opts) == "idfv:ab-cd"


@given(mmp=st.sampled_from(MMPS), value=json_values, ct=st.sampled_from([None, "application/json", "text/plain"]))
def test_never_raises_on_json(mmp: str, value: Any, ct: str | None) -> None:
    key = user_key(mmp, json.dumps(value).encode(), "", ct, {})
    assert isinstance(key, str) and ":" in key


@given(mmp=st.sampled_from(MMPS), body=st.binary(max_size=64), qs=st.text(max_size=64))
def test_never_raises_on_bytes(mmp: str, body: bytes, qs: str) -> None:
    key = user_key(mmp, body, qs, None, {})
    assert isinstance(key, str) and ":" in key


def test_ingress_url_secret_param_never_counts() -> None:
    opts = {"url_secret_param": "k"}
    assert user_key("generic", b"", "k=one", None, opts) == user_key("generic", b"", "k=two", None, opts)
    assert query_to_body("generic", "k=s&a=1", opts) == {"a": "1"}

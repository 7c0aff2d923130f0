from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ops.inspect.redact import DEVICE, SECRET, Redactor, key_class

SECRET_VALUE = "s3cr3t-Hm4c-k3y"
DEVICE_ID = "6D0F1C2B-AAAA-4BBB-8CCC-123456789ABC"


@pytest.mark.parametrize(("key", "kind"), [
    ("api_key", "secret"), ("apiKey", "secret"), ("X-Branch-Signature", "secret"), ("access_token", "secret"),
    ("Authorization", "secret"), ("sig", "secret"), ("signup_date", None), ("idfa", "device"), ("IDFV", "device"),
    ("android_id", "device"), ("user_data_aaid", "device"), ("gaid", "device"), ("ip", "device"),
    ("campaign", None), ("event_name", None), ("user_key", None), ("zip", None),
])
def test_key_classes(key: str, kind: str | None) -> None:
    assert key_class(key) == kind


def test_json_payload() -> None:
    r = Redactor([SECRET_VALUE])
    body = {"name": "INSTALL", "user_data": {"idfa": DEVICE_ID, "os": "iOS", "developer_identity": DEVICE_ID.lower()},
            "custom": {"note": f"key={SECRET_VALUE}"}, "token": "abc", "campaign": "Winter"}
    out = r.body(json.dumps(body).encode())
    assert DEVICE_ID not in out and DEVICE_ID.lower() not in out and SECRET_VALUE not in out and '"abc"' not in out
    shown = json.loads(out)
    assert shown["user_data"] == {"idfa": DEVICE, "os": "iOS", "developer_identity": DEVICE}
    assert shown["token"] == SECRET and shown["campaign"] == "Winter" and shown["custom"]["note"] == f"key={SECRET}"


def test_query_and_user_key() -> None:
    r = Redactor([SECRET_VALUE])
    out = r.body(f"event=install&idfa={DEVICE_ID}&sig=abcd1234&c=S%C3%A3o".encode())
    assert out.splitlines() == ["event=install", f"idfa={DEVICE}", f"sig={SECRET}", "c=São"]
    assert r.user_key("idfv:" + DEVICE_ID) == "idfv:6D0F…"
    assert r.user_key("cuid:alice") == "cuid:alice"


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
keys = st.text(max_size=10) | st.sampled_from(["idfa", "secret", "Authorization", "gaid", "note", "city"])


@given(st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(keys, c, max_size=4),
                    max_leaves=20), st.data())
def test_planted_secrets_and_device_ids_never_survive(doc, data) -> None:
    """Plant the secret inside arbitrary text and device ids under device keys, anywhere: none is shown."""
    prefix, suffix = data.draw(st.text(max_size=5)), data.draw(st.text(max_size=5))
    planted = {"x": doc, "note": prefix + SECRET_VALUE + suffix, "idfa": DEVICE_ID.lower(),
               "nested": [{"gaid": DEVICE_ID}, {"free": f"device {DEVICE_ID}"}], SECRET_VALUE: 1}
    r = Redactor([SECRET_VALUE])
    for raw in (json.dumps(planted).encode(), json.dumps(planted, ensure_ascii=False).encode()):
        out = r.body(raw)
        assert SECRET_VALUE not in out and DEVICE_ID not in out and DEVICE_ID.lower() not in out


@given(st.binary(max_size=200), st.text(max_size=20))
def test_arbitrary_bytes_with_a_secret_inside(junk: bytes, tail: str) -> None:
    r = Redactor([SECRET_VALUE])
    out = r.body(junk + SECRET_VALUE.encode() + tail.encode())
    assert SECRET_VALUE not in out


class _Probe(dict):  # type: ignore[type-arg]
    """A delivery that has every field: each read returns a distinct id naming its field, so the user-key rules'
    candidates say which field fed which kind."""

    def __init__(self, legacy: bool) -> None:
        super().__init__()
        self.legacy = legacy

    def get(self, key, default=None):  # type: ignore[no-untyped-def,override]
        return None if key in ("user_data", "device", "user") else f"{key}.6d0f1c2b"

    def __contains__(self, key: object) -> bool:
        return self.legacy


def _fed_by_user_key_rules() -> list[tuple[str, str, str]]:
    """(mmp, kind, field) of every device-id candidate the user-key rules can produce."""
    from schemas.user_key import CUSTOMER_KIND, EXTRACTORS, candidates

    out = []
    for mmp in EXTRACTORS:
        for legacy in (False, True):
            for c in candidates(mmp, _Probe(legacy)):
                kind, _, value = c.partition(":")
                if kind != CUSTOMER_KIND:
                    out.append((mmp, kind, value.rpartition(".")[0]))
    return sorted(set(out))


@pytest.mark.parametrize(("mmp", "kind", "field"), _fed_by_user_key_rules())
def test_every_device_id_the_user_key_rules_read_is_masked(mmp: str, kind: str, field: str) -> None:
    """Derived from schemas.user_key: a new MMP's device id cannot be forgotten by the operator views."""
    r = Redactor()
    assert r.user_key(f"{kind}:5681989383586-1234567") == f"{kind}:5681…", (mmp, kind)
    assert key_class(field) == "device", (mmp, field)
    shown = json.loads(r.body(json.dumps({field: "5681989383586-1234567"}).encode()))
    assert shown == {field: DEVICE}


def test_the_probe_sees_the_mmp_specific_kinds() -> None:
    kinds = {k for _, k, _ in _fed_by_user_key_rules()}
    assert {"appsflyer_id", "adjust_adid", "kochava_device_id", "analytics_installation_id", "idfa"} <= kinds

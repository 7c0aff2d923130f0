"""Body decoding bounds (gzip bombs stop at the limit), content types, and what counts as an unusable body."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import body, errors
from ingest.records import body_problem

LIMIT = 1 << 20


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"\0" * (64 << 20), 9)  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(errors.IngestError) as e:
        body.decode(bomb, "gzip", LIMIT)
    assert e.value.status == 413


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=4096), enc=st.sampled_from(["gzip", "deflate", "deflate-raw"]))
def test_decode_roundtrip_within_limit(data, enc):
    if enc == "gzip":
        wire = gzip.compress(data)
    elif enc == "deflate":
        wire = zlib.compress(data)
    else:
        c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        wire = c.compress(data) + c.flush()
    assert body.decode(wire, enc.removesuffix("-raw"), 4096) == data
    if len(data) > 10:
        with pytest.raises(errors.IngestError) as e:
            body.decode(wire, enc.removesuffix("-raw"), len(data) - 1)
        assert e.value.status == 413


def test_decode_identity_corrupt_and_unknown():
    assert body.decode(b"abc", None, LIMIT) == b"abc"
    assert body.decode(b"abc", "identity", LIMIT) == b"abc"
    for bad in (b"not gzip", gzip.compress(b'{"a":1}')[:-6], gzip.compress(b"{}") + b"trailing"):
        with pytest.raises(errors.IngestError) as e:
            body.decode(bad, "gzip", LIMIT)
        assert (e.value.status, e.value.code) == (400, "bad_content_encoding")
    with pytest.raises(errors.IngestError) as e:
        body.decode(b"x", "br", LIMIT)
    assert e.value.status == 415


ALLOWED = frozenset({"application/json", "application/x-www-form-urlencoded"})


@pytest.mark.parametrize(("method", "ct", "length", "ok"), [
    ("POST", "application/json", 10, True),
    ("POST", "Application/JSON; charset=utf-8", 10, True),
    ("POST", "application/x-www-form-urlencoded", 10, True),
    ("POST", "text/xml", 10, False),
    ("POST", "multipart/form-data; boundary=x", 10, False),
    ("POST", None, 10, False),
    ("POST", None, 0, True),
    ("GET", None, None, True),
])
def test_content_types(method, ct, length, ok):
    if ok:
        body.check_content_type(method, ct, length, ALLOWED)
    else:
        with pytest.raises(errors.IngestError) as e:
            body.check_content_type(method, ct, length, ALLOWED)
        assert e.value.status == 415


@pytest.mark.parametrize(("method", "ct", "data", "qs", "reason"), [
    ("POST", "application/json", b"", "", "empty_body"),
    ("POST", "application/json", b"  \n", "", "empty_body"),
    ("GET", None, b"", "", "empty_body"),
    ("POST", "application/json", b"{not json", "", "invalid_json"),
    ("POST", "application/json", b'"a string"', "", "invalid_json"),
    ("POST", "application/json", b"{}", "", "invalid_json"),
    ("POST", "application/x-www-form-urlencoded", b"a=\xff\xfe", "", "invalid_form"),
    ("POST", "application/json", b'{"a": 1}', "", None),
    ("POST", "application/json", b'[{"a": 1}]', "", None),
    ("POST", "application/x-www-form-urlencoded", b"a=1&b=%E6%98%A5", "", None),
    ("GET", None, b"", "event=OPEN", None),
    ("POST", "application/json", b"", "activity_kind=install", None),
])
def test_body_problem(method, ct, data, qs, reason):
    got = body_problem(method, ct, data, qs)
    assert (got[0] if got else None) == reason

"""Every scheme against the published vectors (../shared/reference/signatures.md), tampering, rotation and replay
windows — pure functions, no server."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from ingest.verify import (
    Inbound,
    Outbound,
    basic,
    chain,
    hmac_body,
    network,
    standard_webhooks,
    stripe,
    token,
    url_secret,
)
from ingest.verify.options import SourceOptions

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID, SW_TS, SW_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
GH_SECRET, GH_BODY = "It's a Secret to Everybody", b"Hello, World!"
GH_HEX = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
GH_B64 = "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc="
STRIPE_SECRET, STRIPE_BODY = "whsec_test_secret", b'{"id":"evt_test_webhook","object":"event"}'
STRIPE_HEADER = "t=1614265330,v1=3c5817089d739023dd6190f70a3757e04f7a2fd8b5dab12c2e000f51970dccff"


def req(headers: dict[str, str] | None = None, body: bytes = b"", query: str = "", client: str = "127.0.0.1",
        secure: bool = False, path_secret: str | None = None) -> Inbound:
    return Inbound("POST", "/webhooks/x", query, CIMultiDict(headers or {}), body, client, secure, path_secret)


def sw_headers(sig: str, ts: int = SW_TS, msg_id: str = SW_ID) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


# -- Standard Webhooks -------------------------------------------------------------------------------------------
SW = standard_webhooks.build(SourceOptions(), [SW_SECRET])


def test_standard_webhooks_official_vector_passes():
    assert SW(req(sw_headers(SW_SIG), SW_BODY), SW_TS) is None
    # the secret also works without the whsec_ prefix (as the reference tests pass it)
    assert standard_webhooks.build(SourceOptions(), [SW_SECRET.removeprefix("whsec_")])(
        req(sw_headers(SW_SIG), SW_BODY), SW_TS) is None
    assert standard_webhooks.signature(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIG


@pytest.mark.parametrize("sig", [
    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",  # Python/Svix suites: last character differs
    "v1,dawfeoifkpqwoekfpqoekf",  # JS suite
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",  # Go suite
    SW_SIG[:8], "v1,", "v2," + SW_SIG[3:],
])
def test_standard_webhooks_published_invalid_signatures_fail(sig):
    assert SW(req(sw_headers(sig), SW_BODY), SW_TS) == "bad_signature"


def test_standard_webhooks_list_with_valid_third_entry_passes():
    bad = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    header = f"{bad} v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SW_SIG} {bad}"
    assert SW(req(sw_headers(header), SW_BODY), SW_TS) is None


@pytest.mark.parametrize("body", [b'{"test": 2432232315}', b'{"test":2432232314}'])  # COMPUTED regression vectors
def test_standard_webhooks_reserialized_or_changed_body_fails(body):
    assert SW(req(sw_headers(SW_SIG), body), SW_TS) == "bad_signature"


@pytest.mark.parametrize(("drop", "reason"), [("webhook-id", "missing_signature"),
                                              ("webhook-timestamp", "missing_signature"),
                                              ("webhook-signature", "missing_signature")])
def test_standard_webhooks_missing_headers_fail(drop, reason):
    h = sw_headers(SW_SIG)
    del h[drop]
    assert SW(req(h, SW_BODY), SW_TS) == reason


def test_standard_webhooks_bad_timestamp_and_window():
    h = sw_headers(SW_SIG)
    h["webhook-timestamp"] = "hello"
    assert SW(req(h, SW_BODY), SW_TS) == "bad_timestamp"
    # the same valid signature replayed later than now - 5 min - 1 s / presented earlier than now + 5 min + 1 s
    assert SW(req(sw_headers(SW_SIG), SW_BODY), SW_TS + 301) == "stale_timestamp"
    assert SW(req(sw_headers(SW_SIG), SW_BODY), SW_TS - 301) == "future_timestamp"
    assert SW(req(sw_headers(SW_SIG), SW_BODY), SW_TS + 299) is None
    # a configured window
    narrow = standard_webhooks.build(SourceOptions(tolerance_s=10, future_tolerance_s=0), [SW_SECRET])
    assert narrow(req(sw_headers(SW_SIG), SW_BODY), SW_TS + 11) == "stale_timestamp"
    assert narrow(req(sw_headers(SW_SIG), SW_BODY), SW_TS - 1) == "future_timestamp"


def test_standard_webhooks_svix_header_names():
    svix = standard_webhooks.build(SourceOptions(standard_webhooks_prefix="svix-"), [SW_SECRET])
    h = {k.replace("webhook-", "svix-"): v for k, v in sw_headers(SW_SIG).items()}
    assert svix(req(h, SW_BODY), SW_TS) is None
    assert svix(req(sw_headers(SW_SIG), SW_BODY), SW_TS) == "missing_signature"


def test_standard_webhooks_rotation_old_and_new_secret():
    new = "whsec_" + base64.b64encode(b"n" * 32).decode()
    both = standard_webhooks.build(SourceOptions(), [SW_SECRET, new])
    for secret in (SW_SECRET, new):
        sig = standard_webhooks.signature(secret, "msg_1", SW_TS, b"{}")
        assert both(req(sw_headers(sig, msg_id="msg_1"), b"{}"), SW_TS) is None
    assert SW(req(sw_headers(standard_webhooks.signature(new, "msg_1", SW_TS, b"{}"), msg_id="msg_1"), b"{}"),
              SW_TS) == "bad_signature"


# -- Stripe-style --------------------------------------------------------------------------------------------------
ST = stripe.build(SourceOptions(), [STRIPE_SECRET])


def test_stripe_computed_vector():
    assert stripe.header_value(STRIPE_SECRET, 1614265330, STRIPE_BODY) == STRIPE_HEADER
    assert ST(req({"Stripe-Signature": STRIPE_HEADER}, STRIPE_BODY), 1614265330) is None


def test_stripe_rejects_tampering_downgrade_and_old_or_future_timestamps():
    assert ST(req({"Stripe-Signature": STRIPE_HEADER}, STRIPE_BODY + b" "), 1614265330) == "bad_signature"
    v0_only = "t=1614265330,v0=" + STRIPE_HEADER.split("v1=")[1]
    assert ST(req({"Stripe-Signature": v0_only}, STRIPE_BODY), 1614265330) == "bad_signature"  # no downgrade
    assert ST(req({"Stripe-Signature": "v1=" + STRIPE_HEADER.split("v1=")[1]}, STRIPE_BODY), 1614265330) \
        == "bad_timestamp"
    assert ST(req({}, STRIPE_BODY), 1614265330) == "missing_signature"
    assert ST(req({"Stripe-Signature": STRIPE_HEADER}, STRIPE_BODY), 1614265330 + 301) == "stale_timestamp"
    assert ST(req({"Stripe-Signature": STRIPE_HEADER}, STRIPE_BODY), 1614265330 - 301) == "future_timestamp"
    # the key is the whole secret string: the base64-decoded key (Standard Webhooks style) must not verify
    wrong = stripe.build(SourceOptions(), ["test_secret"])
    assert wrong(req({"Stripe-Signature": STRIPE_HEADER}, STRIPE_BODY), 1614265330) == "bad_signature"


def test_stripe_rotation_repeated_v1():
    new_sig = stripe.header_value("whsec_new", 1614265330, STRIPE_BODY).split(",")[1]
    header = STRIPE_HEADER + "," + new_sig
    only_new = stripe.build(SourceOptions(), ["whsec_new"])
    assert only_new(req({"Stripe-Signature": header}, STRIPE_BODY), 1614265330) is None
    assert ST(req({"Stripe-Signature": header}, STRIPE_BODY), 1614265330) is None


# -- generic HMAC --------------------------------------------------------------------------------------------------
def test_hmac_github_vector_hex_with_prefix_and_base64():
    gh = hmac_body.build(SourceOptions(hmac_header="X-Hub-Signature-256", hmac_prefix="sha256="), [GH_SECRET])
    assert gh(req({"X-Hub-Signature-256": "sha256=" + GH_HEX}, GH_BODY), 0) is None
    assert gh(req({"X-Hub-Signature-256": "sha256=" + GH_HEX.upper()}, GH_BODY), 0) is None  # hex case-insensitive
    assert gh(req({"X-Hub-Signature-256": GH_HEX}, GH_BODY), 0) == "bad_signature"  # prefix required
    assert gh(req({"X-Hub-Signature-256": "sha256=" + GH_HEX}, GH_BODY + b"\n"), 0) == "bad_signature"
    assert gh(req({}, GH_BODY), 0) == "missing_signature"
    b64 = hmac_body.build(SourceOptions(hmac_encoding="base64"), [GH_SECRET])
    assert b64(req({"X-Signature": GH_B64}, GH_BODY), 0) is None
    assert b64(req({"X-Signature": GH_HEX}, GH_BODY), 0) == "bad_signature"
    assert hmac_body.signature(SourceOptions(hmac_prefix="sha256="), GH_SECRET, GH_BODY) == "sha256=" + GH_HEX


def test_hmac_rotation_any_active_secret():
    opts = SourceOptions()
    v = hmac_body.build(opts, ["old", "new"])
    for s in ("old", "new"):
        assert v(req({"X-Signature": hmac_body.signature(opts, s, b"{}")}, b"{}"), 0) is None
    assert v(req({"X-Signature": hmac_body.signature(opts, "retired", b"{}")}, b"{}"), 0) == "bad_signature"


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40), flip=st.integers(min_value=0))
def test_hmac_sign_verify_roundtrip_and_any_bit_flip_fails(body, secret, flip):
    for opts in (SourceOptions(), SourceOptions(hmac_encoding="base64", hmac_prefix="sha256=")):
        v = hmac_body.build(opts, [secret])
        out = Outbound("POST", "/webhooks/x", body=body)
        hmac_body.sign(opts, secret, out, 0)
        assert v(req(out.headers, body), 0) is None
        if body:
            i = flip % len(body)
            tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
            assert v(req(out.headers, tampered), 0) == "bad_signature"


@settings(max_examples=40, deadline=None)
@given(body=st.binary(max_size=256), now=st.integers(min_value=10**9, max_value=2 * 10**9))
def test_timestamped_schemes_roundtrip(body, now):
    for mod, secret in ((standard_webhooks, SW_SECRET), (stripe, STRIPE_SECRET)):
        out = Outbound("POST", "/webhooks/x", body=body)
        mod.sign(SourceOptions(), secret, out, now)
        v = mod.build(SourceOptions(), [secret])
        assert v(req(out.headers, body), now + 1) is None
        assert v(req(out.headers, body + b"x"), now) == "bad_signature"


# -- static token, URL secret, basic -------------------------------------------------------------------------------
def test_token_linkrunner_key_and_bearer_prefix():
    lr = token.build(SourceOptions(token_header="linkrunner-key"), ["lr_priv_6f1c2a9e4b7d", "lr_priv_next"])
    assert lr(req({"linkrunner-key": "lr_priv_6f1c2a9e4b7d"}), 0) is None
    assert lr(req({"Linkrunner-Key": "lr_priv_next"}), 0) is None  # rotation; header names case-insensitive
    assert lr(req({"linkrunner-key": "lr_priv_6f1c2a9e4b7"}), 0) == "bad_token"
    assert lr(req({}), 0) == "missing_token"
    bearer = token.build(SourceOptions(token_header="Authorization", token_prefix="Bearer "), ["tok"])
    assert bearer(req({"Authorization": "Bearer tok"}), 0) is None
    assert bearer(req({"Authorization": "tok"}), 0) == "bad_token"


def test_url_secret_query_and_path_and_strip():
    v = url_secret.build(SourceOptions(), ["s3cr3t-tok3n"])
    assert v(req(query="event=OPEN&secret=s3cr3t-tok3n"), 0) is None
    assert v(req(query="event=OPEN&%73ecret=s3cr3t-tok3n"), 0) is None  # percent-encoded name
    assert v(req(query="event=OPEN&secret=nope"), 0) == "bad_secret"
    assert v(req(query="event=OPEN"), 0) == "missing_secret"
    assert v(req(path_secret="s3cr3t-tok3n"), 0) is None
    assert v(req(path_secret="nope", query="secret=s3cr3t-tok3n"), 0) == "bad_secret"  # the path one is decisive
    qs = "a=%E6%98%A5&secret=s3cr3t-tok3n&b=&secret=x&c=1+2"
    assert url_secret.strip(qs, "secret") == "a=%E6%98%A5&b=&c=1+2"
    assert url_secret.strip("", "secret") == ""


def test_basic_auth():
    v = basic.build(SourceOptions(), ["af:pa55word", "af:next"])
    enc = "Basic " + base64.b64encode(b"af:next").decode()
    assert v(req({"Authorization": enc}), 0) is None
    assert v(req({"Authorization": "Basic " + base64.b64encode(b"af:wrong").decode()}), 0) == "bad_credentials"
    assert v(req({"Authorization": "Bearer x"}), 0) == "bad_credentials"
    assert v(req({}), 0) == "missing_credentials"
    with pytest.raises(ValueError):
        basic.build(SourceOptions(), ["no-colon"])


# -- network -------------------------------------------------------------------------------------------------------
TRUSTED = network.networks(["10.0.0.0/8"])


def test_client_address_trusts_forwarded_for_only_from_trusted_proxies():
    assert network.client_address("203.0.113.9", "52.9.159.121", TRUSTED) == "203.0.113.9"  # spoofed, ignored
    assert network.client_address("10.1.2.3", "52.9.159.121", TRUSTED) == "52.9.159.121"
    # the client prepended a fake hop; the first untrusted hop from the right is the real one
    assert network.client_address("10.1.2.3", "52.9.159.121, 203.0.113.9", TRUSTED) == "203.0.113.9"
    assert network.client_address("10.1.2.3", "52.9.159.121, 10.9.9.9", TRUSTED) == "52.9.159.121"
    assert network.client_address("10.1.2.3", None, TRUSTED) == "10.1.2.3"
    assert network.client_address("10.1.2.3", "52.9.159.121", ()) == "10.1.2.3"  # no proxies configured


@settings(max_examples=80, deadline=None)
@given(peer=st.ip_addresses(v=4).map(str), claimed=st.lists(st.ip_addresses().map(str), max_size=4))
def test_untrusted_peer_is_never_replaced_by_a_header(peer, claimed):
    trusted = network.networks(["10.0.0.0/8"])
    got = network.client_address(peer, ", ".join(claimed) or None, trusted)
    if not network.contains(trusted, peer):
        assert got == peer


def test_allowlist_and_https_only():
    allow = network.allowlist(["52.9.159.121/32", "198.134.6.0/23"])
    assert allow(req(client="198.134.7.200"), 0) is None
    assert allow(req(client="::ffff:52.9.159.121"), 0) is None  # IPv4-mapped peer
    assert allow(req(client="198.134.8.1"), 0) == "ip_not_allowed"
    assert allow(req(client="garbage"), 0) == "ip_not_allowed"
    assert network.https_only(req(secure=False), 0) == "https_required"
    assert network.is_secure(False, "10.0.0.1", "https", TRUSTED)
    assert not network.is_secure(False, "203.0.113.9", "https", TRUSTED)  # only a trusted proxy may say so


def test_chain_runs_all_checks_and_validates_configuration():
    c = chain.build(["token"], SourceOptions(token_header="x-t"), ["k"], ["127.0.0.1/32"])
    assert c.names == ["ip_allowlist", "token"]
    assert c(req({"x-t": "k"}), 0) is None
    assert c(req({"x-t": "k"}, client="127.0.0.2"), 0) == "ip_not_allowed"
    assert c(req({"x-t": "bad"}), 0) == "bad_token"
    for schemes, secrets, ips, msg in ((["hmac"], [], [], "need at least one secret"), ([], [], [], "no verification"),
                                       (["rot13"], [], [], "unknown"), (["ip_allowlist"], [], [], "ip_allowlist"),
                                       (["none", "token"], ["x"], [], "cannot be combined")):
        with pytest.raises(ValueError, match=msg):
            chain.build(schemes, SourceOptions(), secrets, ips)



_names = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="&=#"), min_size=1, max_size=8)


@settings(max_examples=80, deadline=None)
@given(pairs=st.lists(st.tuples(_names, st.text(max_size=12)), max_size=6), secret=st.text(min_size=1, max_size=12),
       at=st.integers(min_value=0, max_value=6))
def test_url_secret_strip_removes_only_the_secret_parameter(pairs, secret, at):
    from urllib.parse import quote, urlencode

    pairs = [(k, v) for k, v in pairs if k != "secret"]
    parts = [urlencode([p], quote_via=quote) for p in pairs]
    with_secret = [*parts[:at], urlencode([("secret", secret)]), *parts[at:]]
    qs = "&".join(with_secret)
    assert url_secret.find(qs, "secret") == secret
    assert url_secret.strip(qs, "secret") == "&".join(parts)  # the rest byte for byte, in order

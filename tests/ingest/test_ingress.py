"""The ingress over HTTP against the real broker: verification per scheme, rejections with JSON errors, limits,
GET postbacks, placement by user key with the raw bytes intact, duplicates, dead letters, operability endpoints."""

from __future__ import annotations

import gzip
import json
import time

import pytest
from aiokafka.partitioner import DefaultPartitioner

from ingest.verify import Outbound
from schemas import avro
from schemas.user_key import user_key
from tests.ingest.conftest import HMAC_SECRET, LR_KEY, SW_SECRET

SAMPLES = "/work/shared/samples/mmp"
JSON_CT = {"Content-Type": "application/json"}


def lr_body(gaid: str = "6e2f9a10-3c4b-4d5e-8f70-a1b2c3d4e5f6", **extra: object) -> bytes:
    return json.dumps({"event_type": "install", "campaign_name": "Diwali Sale 2024 – Installs", "gaid": gaid,
                       **extra}, ensure_ascii=False).encode()


def post(source: str, body: bytes, headers: dict[str, str] | None = None) -> Outbound:
    return Outbound("POST", f"/webhooks/{source}", headers={**JSON_CT, **(headers or {})}, body=body)


# -- every scheme: a correctly signed delivery is stored, a tampered one is refused ---------------------------------
@pytest.mark.parametrize("source", ["lr", "gen", "gen64", "sw", "st", "br", "af", "sg-tok"])
async def test_each_scheme_accepts_signed_and_refuses_tampered(start_ingress, source):
    ing = await start_ingress()
    body = lr_body(f"0000000{len(source)}-aaaa-4bbb-8ccc-{source:0>12}")
    status, answer, _ = await ing.send(post(source, body), sign_as=source)
    assert status == 200, answer
    tampered = post(source, body)
    from ops.traffic import signing

    signing.sign(ing.source(source), tampered, time.time())
    tampered.body = body.replace(b"install", b"purchase")
    status, answer, _ = await ing.send(tampered)
    if source in ("br", "sg-tok", "lr", "af"):  # token/secret/credential schemes don't sign the body
        assert status == 200
    else:
        assert (status, answer["error"]) == (401, "verification_failed")
    unsigned_status, unsigned, _ = await ing.send(post(source, body))
    assert (unsigned_status, unsigned) == (401, {"error": "verification_failed",
                                                 "detail": "the delivery could not be verified"})  # no hint
    stored = ing.consume(2 if status == 200 else 1)
    assert all(rec["source"] == source for _, rec in stored)


async def test_published_vectors_over_http(start_ingress):
    ing = await start_ingress()
    sw = post("sw-vec", b'{"test": 2432232314}', {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="})
    assert (await ing.send(sw))[0] == 200
    sw.headers["webhook-signature"] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
    assert (await ing.send(sw))[0] == 401
    st = post("st-vec", b'{"id":"evt_test_webhook","object":"event"}', {"Stripe-Signature": (
        "t=1614265330,v1=3c5817089d739023dd6190f70a3757e04f7a2fd8b5dab12c2e000f51970dccff")})
    assert (await ing.send(st))[0] == 200
    # GitHub's vector verifies, but "Hello, World!" is no JSON: a verified sender's unusable body → dead letter + 400
    gh = Outbound("POST", "/webhooks/gen", headers={"Content-Type": "text/plain", "X-Hub-Signature-256": (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")}, body=b"Hello, World!")
    status, answer, _ = await ing.send(gh)
    assert (status, answer["error"]) == (400, "invalid_json")
    stored = ing.consume(2)
    assert sorted(rec["body"] for _, rec in stored) == [b'{"id":"evt_test_webhook","object":"event"}',
                                                       b'{"test": 2432232314}']
    (_, dl), = ing.consume(1, ing.settings.topics.dead_letters)
    assert (dl["reason"], dl["stage"], dl["source"]) == ("invalid_json", "ingress", "gen")
    _, raw = avro.decode(dl["payload"], expect="raw_delivery")
    assert raw["body"] == b"Hello, World!" and raw["delivery_id"] == dl["delivery_id"]


async def test_rotation_old_and_new_secret_both_accepted(start_ingress):
    ing = await start_ingress()
    for secret in ("old-secret", HMAC_SECRET):
        assert (await ing.send(post("gen", lr_body()), sign_as="gen", secret=secret))[0] == 200
    assert (await ing.send(post("gen", lr_body()), sign_as="gen", secret="retired"))[0] == 401
    assert (await ing.send(post("lr", lr_body()), sign_as="lr", secret="lr_priv_other"))[0] == 401


@pytest.mark.parametrize("source", ["sw", "st"])
async def test_expired_future_and_replayed_timestamps(start_ingress, source):
    ing = await start_ingress()
    now = time.time()
    assert (await ing.send(post(source, lr_body()), sign_as=source, now=now - 400))[0] == 401  # expired
    assert (await ing.send(post(source, lr_body()), sign_as=source, now=now + 400))[0] == 401  # from the future
    # a signature captured 6 minutes ago and replayed now, byte for byte
    captured = post(source, lr_body())
    from ops.traffic import signing

    signing.sign(ing.source(source), captured, now - 360)
    assert (await ing.send(captured))[0] == 401
    assert (await ing.send(post(source, lr_body()), sign_as=source, now=now))[0] == 200
    reasons = {r["reason"] for r in (await _rejections(ing))["rejections"]}
    assert {"stale_timestamp", "future_timestamp"} <= reasons


async def _rejections(ing, **params: str) -> dict:
    async with ing.session.get(ing.url + "/ops/rejections", params=params) as r:
        assert r.status == 200
        return await r.json()


# -- where a request comes from ----------------------------------------------------------------------------------
async def test_ip_allowlist_without_trusted_proxy_ignores_forwarded_for(start_ingress):
    ing = await start_ingress()
    status, answer, _ = await ing.send(post("sg", lr_body()))
    assert (status, answer["error"]) == (403, "ip_not_allowed")  # 127.0.0.1 is not Singular
    spoofed = post("sg", lr_body(), {"X-Forwarded-For": "198.134.6.5"})
    assert (await ing.send(spoofed))[0] == 403
    assert (await ing.send(post("sg-tok", lr_body()), sign_as="sg-tok"))[0] == 200  # allowlist AND token
    assert (await ing.send(post("sg-tok", lr_body()), sign_as="sg-tok", secret="nope"))[0] == 401


async def test_ip_allowlist_behind_trusted_proxy(start_ingress):
    ing = await start_ingress(trusted_proxies=["127.0.0.1/32"])
    ok = post("sg", lr_body(), {"X-Forwarded-For": "203.0.113.1, 198.134.6.5"})  # left part: what the client claimed
    assert (await ing.send(ok))[0] == 200
    spoofed = post("sg", lr_body(), {"X-Forwarded-For": "198.134.6.5, 203.0.113.1"})  # the proxy saw 203.0.113.1
    assert (await ing.send(spoofed))[0] == 403
    assert (await ing.send(post("sg", lr_body())))[0] == 403  # the proxy itself is not Singular
    (_, rec), = ing.consume(1)
    assert rec["remote_addr"] == "198.134.6.5"
    assert rec["headers"]["x-forwarded-for"] == "203.0.113.1, 198.134.6.5"


async def test_https_only(start_ingress, tmp_path):
    ing = await start_ingress(trusted_proxies=["127.0.0.1/32"])
    status, answer, _ = await ing.send(post("tls", lr_body()), sign_as="tls")
    assert (status, answer["error"]) == (403, "https_required")
    assert (await ing.send(post("tls", lr_body(), {"X-Forwarded-Proto": "https"}), sign_as="tls"))[0] == 200
    plain = await start_ingress()  # no trusted proxy: the header is anybody's claim
    assert (await plain.send(post("tls", lr_body(), {"X-Forwarded-Proto": "https"}), sign_as="tls"))[0] == 403


async def test_serves_tls_itself(start_ingress, tmp_path):
    import shutil
    import ssl
    import subprocess

    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    ing = await start_ingress(tls_cert=str(cert), tls_key=str(key))
    assert ing.url.startswith("https://")
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    out = post("tls", lr_body())
    from ops.traffic import signing

    signing.sign(ing.source("tls"), out, time.time())
    async with ing.session.post(ing.url + "/webhooks/tls", data=out.body, headers=out.headers, ssl=ctx) as r:
        assert r.status == 200, await r.text()


# -- limits and content --------------------------------------------------------------------------------------------
async def test_oversize_and_gzip_bomb_are_refused_and_not_stored(start_ingress):
    ing = await start_ingress(max_body_bytes=64 * 1024)
    big = lr_body(pad="x" * (64 * 1024))
    status, answer, _ = await ing.send(post("lr", big), sign_as="lr")
    assert (status, answer["error"]) == (413, "body_too_large")

    async def chunked():  # no Content-Length: the limit applies while reading
        for _ in range(20):
            yield b"x" * 8192

    async with ing.session.post(ing.url + "/webhooks/lr", data=chunked(),
                                headers={**JSON_CT, "linkrunner-key": LR_KEY}) as r:
        assert r.status == 413
    bomb = gzip.compress(b"{" + b" " * (50 << 20) + b"}", 9)
    status, _, _ = await ing.send(post("lr", bomb, {"Content-Encoding": "gzip"}), sign_as="lr")
    assert status == 413
    small = lr_body(gaid="11111111-2222-4333-8444-555555555555")
    assert (await ing.send(post("lr", gzip.compress(small), {"Content-Encoding": "gzip"}), sign_as="lr"))[0] == 200
    stored = ing.consume(1)
    assert [rec["body"] for _, rec in stored] == [small]  # decoded body stored; nothing of the refused ones
    assert stored[0][1]["headers"]["content-encoding"] == "gzip"


@pytest.mark.parametrize(("ct", "status"), [("text/xml", 415), ("multipart/form-data; boundary=x", 415),
                                            (None, 415), ("application/json; charset=utf-8", 200)])
async def test_content_types(start_ingress, ct, status):
    ing = await start_ingress()
    out = Outbound("POST", "/webhooks/lr", headers={"Content-Type": ct} if ct else {}, body=lr_body())
    got, answer, _ = await ing.send(out, sign_as="lr")
    assert got == status
    if status == 415:
        assert answer["error"] == "unsupported_media_type"


async def test_unknown_source_and_method(start_ingress):
    ing = await start_ingress()
    status, answer, _ = await ing.send(post("nope", lr_body()))
    assert (status, answer["error"]) == (404, "unknown_source")
    status, answer, headers = await ing.send(Outbound("GET", "/webhooks/lr"), sign_as="lr")
    assert (status, answer["error"], headers["Allow"]) == (405, "method_not_allowed", "POST")
    status, _, _ = await ing.send(Outbound("PUT", "/webhooks/br", body=b"{}", headers=JSON_CT), sign_as="br")
    assert status == 405


# -- GET postbacks -------------------------------------------------------------------------------------------------
def _sample(name: str) -> dict:
    with open(f"{SAMPLES}/{name}.json") as f:
        return json.load(f)


async def test_get_postbacks_with_percent_encoded_unicode(start_ingress):
    ing = await start_ingress()
    branch = _sample("branch_v2_06_get_freemarker_template_unicode")
    raw_qs = branch["raw_query_string"]  # carries secret=s3cr3t-tok3n, the source's URL secret
    assert (await ing.send(Outbound("GET", "/webhooks/br", raw_query=raw_qs)))[0] == 200
    adjust = _sample("adjust_01_install_android_get")
    assert (await ing.send(Outbound("GET", "/webhooks/adj", raw_query=adjust["raw_query_string"]),
                           sign_as="adj"))[0] == 200
    # path-secret form
    path = Outbound("GET", "/webhooks/br/s3cr3t-tok3n", raw_query=raw_qs.replace("&secret=s3cr3t-tok3n", ""))
    assert (await ing.send(path))[0] == 200
    assert (await ing.send(Outbound("GET", "/webhooks/br/wrong", raw_query="event=OPEN")))[0] == 401
    recs = {rec["source"] + rec["delivery_id"]: rec for _, rec in ing.consume(3)}
    by_src = sorted(recs.values(), key=lambda r: r["source"])
    adj_rec, br1, br2 = by_src
    expected_qs = raw_qs.replace("&secret=s3cr3t-tok3n", "")
    for rec in (br1, br2):
        assert rec["query_string"] == expected_qs  # the rest byte for byte, the secret gone
        assert rec["path"] == "/webhooks/br"
        assert rec["user_key"] == branch["derived"]["partition_key"] == "android_id:a1b2c3d4e5f60718"
        assert "s3cr3t" not in json.dumps(rec, default=str)
    assert adj_rec["query_string"] == adjust["raw_query_string"]
    assert adj_rec["user_key"] == "adjust_adid:8f3c5b2a1d4e6f7089a0b1c2d3e4f5a6" and adj_rec["body"] == b""


# -- durable, keyed, intact ------------------------------------------------------------------------------------------
async def test_records_land_on_their_user_key_partition_with_raw_bytes_intact(start_ingress):
    ing = await start_ingress()
    sent: dict[str, bytes] = {}
    for i in range(24):
        gaid = f"{i:08x}-3c4b-4d5e-8f70-a1b2c3d4e5f6"
        # odd spacing and unicode: stored bytes must equal the sent bytes, not a re-serialization
        body = ('{ "event_type":"signup",  "gaid": "' + gaid.upper() + '", "name": "Zoë 山田", "n": 1.50 }').encode()
        status, answer, _ = await ing.send(post("gen", body), sign_as="gen")
        assert status == 200
        sent[answer["delivery_id"]] = body
    part = DefaultPartitioner()
    parts = list(range(ing.settings.topics.partitions))
    got = ing.consume(len(sent))
    assert len(got) == len(sent)
    for msg, rec in got:
        assert rec["body"] == sent[rec["delivery_id"]]
        assert msg.key().decode() == rec["user_key"] == user_key("generic", rec["body"], "", "application/json", {})
        assert rec["user_key"].startswith("gaid:")
        assert msg.partition() == part(msg.key(), parts, parts)
        assert HMAC_SECRET not in json.dumps(rec, default=str)
        assert "x-hub-signature-256" not in rec["headers"] and "x-signature" not in rec["headers"]
    assert len({m.partition() for m, _ in got}) > 1


async def test_duplicates_are_both_stored(start_ingress):
    ing = await start_ingress()
    out = post("lr", lr_body())
    first = await ing.send(out, sign_as="lr")
    second = await ing.send(out)  # the sender's retry: byte-identical
    assert first[0] == second[0] == 200 and first[1]["delivery_id"] != second[1]["delivery_id"]
    (m1, r1), (m2, r2) = ing.consume(2)
    assert r1["body"] == r2["body"] and m1.partition() == m2.partition()
    assert LR_KEY not in json.dumps([r1, r2], default=str) and "linkrunner-key" not in r1["headers"]


async def test_empty_body_from_verified_sender_is_dead_lettered_unverified_is_not(start_ingress):
    ing = await start_ingress()
    status, answer, _ = await ing.send(post("lr", b""), sign_as="lr")
    assert (status, answer["error"]) == (400, "empty_body")
    assert (await ing.send(post("lr", b"")))[0] == 401  # unverified: never stored
    status, answer, _ = await ing.send(post("sw", b"{broken"), sign_as="sw")
    assert (status, answer["error"]) == (400, "invalid_json")
    dls = ing.consume(2, ing.settings.topics.dead_letters)
    assert sorted((d["source"], d["reason"]) for _, d in dls) == [("lr", "empty_body"), ("sw", "invalid_json")]
    assert ing.consume(0, timeout_polls=2) == []  # nothing on the raw topic


# -- operability -----------------------------------------------------------------------------------------------------
async def test_health_ready_metrics_and_rejections(start_ingress):
    ing = await start_ingress()
    await ing.send(post("lr", lr_body()), sign_as="lr")
    await ing.send(post("lr", lr_body()), sign_as="lr", secret="guess")
    await ing.send(post("sg", lr_body()))
    for path, status in (("/healthz", 200), ("/readyz", 200)):
        async with ing.session.get(ing.url + path) as r:
            assert r.status == status
    async with ing.session.get(ing.url + "/metrics") as r:
        text = await r.text()
    assert 'attrib_ingest_verification_failures_total{reason="bad_token",source="lr"}' in text
    assert 'attrib_ingest_requests_total{source="lr",status="200"}' in text
    assert "attrib_ingest_produce_seconds_bucket" in text
    got = await _rejections(ing, source="lr")
    assert got["shown"] == 1
    (r,) = got["rejections"]
    assert (r["status"], r["error"], r["reason"], r["client"]) == (401, "verification_failed", "bad_token", "127.0.0.1")
    assert "guess" not in json.dumps(got)
    assert (await _rejections(ing))["shown"] == 2


async def test_readyz_fails_when_topic_missing(start_ingress):
    ing = await start_ingress()
    from ingest.app import INGRESS

    state = ing.runner.app[INGRESS]
    state.raw_topic = "t-does-not-exist"
    state._ready = (0.0, False, "")
    async with ing.session.get(ing.url + "/readyz") as r:
        assert r.status == 503
        assert (await r.json())["error"] == "not_ready"


def test_bad_source_configuration_fails_naming_the_key(make_settings):
    from attrib.settings import ConfigError
    from ingest.sources import compile_all

    for src, named in (({"name": "a", "mmp": "generic", "verify": ["hmac"], "secrets": ["x"],
                         "options": {"hmac_encoding": "hexx"}}, "ATTRIB_SOURCES[0]__OPTIONS__HMAC_ENCODING"),
                       ({"name": "a", "mmp": "generic"}, "ATTRIB_SOURCES[0]__VERIFY"),
                       ({"name": "a", "mmp": "generic", "verify": ["standard_webhooks"], "secrets": ["!!"]},
                        "ATTRIB_SOURCES[0]__VERIFY")):
        with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace("]", r"\]")):
            compile_all(make_settings(sources=[src]))
    assert SW_SECRET  # the shared constants stay importable for other modules

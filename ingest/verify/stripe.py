"""``stripe``: ``Stripe-Signature: t=<unix s>,v1=<hex>[,v1=…]`` over ``{t}.{body}``, keyed by the whole secret string
(``whsec_`` included, no base64 — the difference from Standard Webhooks). Only ``v1`` counts (no downgrade to ``v0``).
Stripe's libraries check only the past; we also refuse timestamps beyond ``future_tolerance_s`` (pre-signed replays)."""

from __future__ import annotations

import hashlib
import hmac

from ingest.verify import Inbound, Outbound, Verifier
from ingest.verify._util import hexdecode
from ingest.verify.options import SourceOptions

NAME = "stripe"


def build(opts: SourceOptions, secrets: list[str]) -> Verifier:
    keys = [s.encode() for s in secrets]
    header = opts.stripe_header.lower()
    past, future = opts.tolerance_s, opts.future_tolerance

    def check(req: Inbound, now: float) -> str | None:
        value = req.headers.get(header)
        if not value:
            return "missing_signature"
        t: str | None = None
        v1: list[bytes] = []
        for item in value.split(","):
            k, _, v = item.strip().partition("=")
            if k == "t" and t is None:
                t = v
            elif k == "v1":
                d = hexdecode(v)
                if d is not None:
                    v1.append(d)
        if t is None or not t.isascii() or not t.isdigit():
            return "bad_timestamp"
        if not v1:
            return "bad_signature"
        signed = t.encode() + b"." + req.body
        ok = False
        for key in keys:
            mac = hmac.new(key, signed, hashlib.sha256).digest()
            for given in v1:
                ok |= hmac.compare_digest(given, mac)
        if not ok:
            return "bad_signature"
        ts = int(t)
        if now - ts > past:
            return "stale_timestamp"
        if ts - now > future:
            return "future_timestamp"
        return None

    return check


def header_value(secret: str, t: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def sign(opts: SourceOptions, secret: str, out: Outbound, now: float) -> None:
    out.headers[opts.stripe_header] = header_value(secret, int(now), out.body)

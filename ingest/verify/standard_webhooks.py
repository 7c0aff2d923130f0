"""``standard_webhooks``: Standard Webhooks v1 (Svix): ``webhook-id``/``-timestamp``/``-signature`` (or the ``svix-``
names), HMAC-SHA256 over ``{id}.{timestamp}.{body}`` keyed by the base64-decoded ``whsec_`` secret, ``v1,<base64>``
signatures space-separated (several during the sender's own rotation; other versions ignored), timestamp within
±tolerance (default 5 min, the reference libraries' value)."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ingest.verify import Inbound, Outbound, Verifier
from ingest.verify._util import b64decode_lenient, wire
from ingest.verify.options import SourceOptions

NAME = "standard_webhooks"


def key_bytes(secret: str) -> bytes:
    k = b64decode_lenient(secret.removeprefix("whsec_"))
    if not k:
        raise ValueError("a Standard Webhooks secret is base64, optionally prefixed whsec_")
    return k


def build(opts: SourceOptions, secrets: list[str]) -> Verifier:
    keys = [key_bytes(s) for s in secrets]
    p = opts.standard_webhooks_prefix
    h_id, h_ts, h_sig = p + "id", p + "timestamp", p + "signature"
    past, future = opts.tolerance_s, opts.future_tolerance

    def check(req: Inbound, now: float) -> str | None:
        msg_id, ts, sig = req.headers.get(h_id), req.headers.get(h_ts), req.headers.get(h_sig)
        if not msg_id or not ts or not sig:
            return "missing_signature"
        ts = ts.strip()
        if not ts.isascii() or not ts.isdigit():
            return "bad_timestamp"
        t = int(ts)
        if now - t > past:
            return "stale_timestamp"
        if t - now > future:
            return "future_timestamp"
        signed = wire(msg_id) + f".{t}.".encode() + req.body  # the id as sent, non-UTF-8 bytes too
        macs = [hmac.new(k, signed, hashlib.sha256).digest() for k in keys]
        ok = False
        for entry in sig.split():
            version, _, b64 = entry.partition(",")
            if version != "v1":
                continue  # v1a (ed25519) and unknown versions: not ours to judge
            given = b64decode_lenient(b64)
            if given is None:
                continue
            for m in macs:
                ok |= hmac.compare_digest(given, m)
        return None if ok else "bad_signature"

    return check


def signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    mac = hmac.new(key_bytes(secret), wire(msg_id) + f".{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def sign(opts: SourceOptions, secret: str, out: Outbound, now: float, msg_id: str | None = None) -> None:
    import uuid

    p = opts.standard_webhooks_prefix
    msg_id = msg_id or out.headers.get(p + "id") or f"msg_{uuid.uuid4().hex}"
    ts = int(now)
    out.headers[p + "id"] = msg_id
    out.headers[p + "timestamp"] = str(ts)
    out.headers[p + "signature"] = signature(secret, msg_id, ts, out.body)

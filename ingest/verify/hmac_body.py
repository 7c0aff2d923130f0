"""``hmac``: HMAC of the raw body in one header, hex or base64, optional prefix such as ``sha256=`` (GitHub's
X-Hub-Signature-256 and the setup guide's scheme). No timestamp is signed, so replay protection is downstream dedupe."""

from __future__ import annotations

import base64
import hashlib
import hmac

from ingest.verify import Inbound, Outbound, Verifier
from ingest.verify._util import any_equal, b64decode_lenient, hexdecode
from ingest.verify.options import SourceOptions

NAME = "hmac"


def key_bytes(opts: SourceOptions, secret: str) -> bytes:
    if opts.hmac_secret_encoding == "base64":
        k = b64decode_lenient(secret)
        if k is None:
            raise ValueError("secret is not base64 (options.hmac_secret_encoding = 'base64')")
        return k
    return secret.encode()


def build(opts: SourceOptions, secrets: list[str]) -> Verifier:
    keys = [key_bytes(opts, s) for s in secrets]
    header, prefix, algo = opts.hmac_header.lower(), opts.hmac_prefix, getattr(hashlib, opts.hmac_algorithm)
    decode = hexdecode if opts.hmac_encoding == "hex" else b64decode_lenient

    def check(req: Inbound, now: float) -> str | None:
        value = req.headers.get(header)
        if not value:
            return "missing_signature"
        value = value.strip()
        if prefix:
            if value[: len(prefix)].lower() != prefix.lower():
                return "bad_signature"
            value = value[len(prefix):]
        given = decode(value)
        if given is None:
            return "bad_signature"
        macs = [hmac.new(k, req.body, algo).digest() for k in keys]
        return None if any_equal(given, macs) else "bad_signature"

    return check


def signature(opts: SourceOptions, secret: str, body: bytes) -> str:
    mac = hmac.new(key_bytes(opts, secret), body, getattr(hashlib, opts.hmac_algorithm)).digest()
    return opts.hmac_prefix + (mac.hex() if opts.hmac_encoding == "hex" else base64.b64encode(mac).decode())


def sign(opts: SourceOptions, secret: str, out: Outbound, now: float) -> None:
    out.headers[opts.hmac_header] = signature(opts, secret, out.body)

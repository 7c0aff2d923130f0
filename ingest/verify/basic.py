"""``basic``: HTTP Basic credentials; each secret is ``user:password``."""

from __future__ import annotations

import base64

from ingest.verify import Inbound, Outbound, Verifier
from ingest.verify._util import any_equal, b64decode_lenient
from ingest.verify.options import SourceOptions

NAME = "basic"


def build(opts: SourceOptions, secrets: list[str]) -> Verifier:
    for s in secrets:
        if ":" not in s:
            raise ValueError("a basic-auth secret is 'user:password'")
    creds = [s.encode() for s in secrets]

    def check(req: Inbound, now: float) -> str | None:
        value = req.headers.get("authorization")
        if not value:
            return "missing_credentials"
        scheme, _, b64 = value.strip().partition(" ")
        if scheme.lower() != "basic":
            return "bad_credentials"
        given = b64decode_lenient(b64)
        if given is None:
            return "bad_credentials"
        return None if any_equal(given, creds) else "bad_credentials"

    return check


def sign(opts: SourceOptions, secret: str, out: Outbound, now: float) -> None:
    out.headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()

"""``token``: a static secret in a header compared whole, in constant time (Linkrunner ``linkrunner-key``, AppsFlyer's
configured ``Authorization`` or ``X-…`` token name). ``token_prefix`` (e.g. ``Bearer ``) is stripped when configured."""

from __future__ import annotations

from ingest.verify import Inbound, Outbound, Verifier
from ingest.verify._util import any_equal, wire
from ingest.verify.options import SourceOptions

NAME = "token"


def _header(opts: SourceOptions) -> str:
    return (opts.token_header or "x-webhook-token").lower()


def build(opts: SourceOptions, secrets: list[str]) -> Verifier:
    tokens = [s.encode() for s in secrets]
    header, prefix = _header(opts), opts.token_prefix

    def check(req: Inbound, now: float) -> str | None:
        value = req.headers.get(header)
        if value is None or not value.strip():
            return "missing_token"
        value = value.strip()
        if prefix:
            if value[: len(prefix)].lower() != prefix.lower():
                return "bad_token"
            value = value[len(prefix):].strip()
        return None if any_equal(wire(value), tokens) else "bad_token"

    return check


def sign(opts: SourceOptions, secret: str, out: Outbound, now: float) -> None:
    out.headers[_header(opts)] = opts.token_prefix + secret

"""``url_secret``: a secret in the callback URL (Branch's documented pattern; Adjust/Kochava/Tenjin templates):
``?secret=…`` (parameter name configurable) or a trailing path segment ``/webhooks/{source}/{secret}``. The ingress
strips it from the stored path and query (see ingest/records.py) so it never reaches Kafka or logs."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, unquote_plus

from ingest.verify import Inbound, Outbound, Verifier
from ingest.verify._util import any_equal, wire
from ingest.verify.options import SourceOptions

NAME = "url_secret"


def find(query_string: str, param: str) -> str | None:
    if not query_string:
        return None
    for k, v in parse_qsl(query_string, keep_blank_values=True, errors="replace"):
        if k == param:
            return v
    return None


def strip(query_string: str, param: str) -> str:
    """The raw query without ``param`` (the rest kept byte for byte, order kept)."""
    if not query_string:
        return query_string
    kept = [part for part in query_string.split("&") if unquote_plus(part.split("=", 1)[0], errors="replace") != param]
    return "&".join(kept)


def build(opts: SourceOptions, secrets: list[str]) -> Verifier:
    values = [s.encode() for s in secrets]
    param = opts.url_secret_param

    def check(req: Inbound, now: float) -> str | None:
        given = req.path_secret if req.path_secret is not None else find(req.query_string, param)
        if not given:
            return "missing_secret"
        return None if any_equal(wire(given), values) else "bad_secret"

    return check


def sign(opts: SourceOptions, secret: str, out: Outbound, now: float) -> None:
    out.query.append((opts.url_secret_param, secret))


def sign_path(secret: str, out: Outbound) -> None:
    out.path = out.path.rstrip("/") + "/" + quote(secret, safe="")

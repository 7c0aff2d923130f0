"""The sending side of a configured source: sign an outbound delivery the way the real sender would, so that
``attrib send``, the tests and the benchmark produce deliveries the ingress verifies."""

from __future__ import annotations

from urllib.parse import urlencode

from attrib.settings import SourceSettings
from ingest.verify import Outbound, chain
from ingest.verify.options import TOKEN_HEADER_DEFAULTS, SourceOptions


def options(src: SourceSettings) -> SourceOptions:
    opts = SourceOptions.model_validate(src.options)
    if opts.token_header is None:
        opts = opts.model_copy(update={"token_header": TOKEN_HEADER_DEFAULTS.get(src.mmp, "x-webhook-token")})
    return opts


def sign(src: SourceSettings, out: Outbound, now: float, secret: str | None = None) -> Outbound:
    """Add what every scheme of ``src`` needs, with ``secret`` (default: the source's newest secret, the last one)."""
    opts = options(src)
    if secret is None and src.secrets:
        secret = src.secrets[-1].get_secret_value()
    for signer in chain.signers(list(src.verify)):
        assert secret is not None, f"source {src.name} has no secret to sign with"
        signer(opts, secret, out, now)
    return out


def query_string(out: Outbound) -> str:
    return "&".join(p for p in (out.raw_query, urlencode(out.query)) if p)


def url(base: str, out: Outbound) -> str:
    qs = query_string(out)
    return base.rstrip("/") + out.path + ("?" + qs if qs else "")

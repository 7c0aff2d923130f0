"""Combination of schemes: every configured check must pass (e.g. IP allowlist AND token). Cheap transport checks run
first so a request from a wrong address or over plain HTTP costs no HMAC; the first failure's reason is reported."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from ingest.verify import (
    Inbound,
    Outbound,
    Verifier,
    basic,
    hmac_body,
    network,
    standard_webhooks,
    stripe,
    token,
    url_secret,
)
from ingest.verify.options import SourceOptions

SCHEMES: dict[str, ModuleType] = {m.NAME: m for m in (hmac_body, standard_webhooks, stripe, token, url_secret, basic)}
IP_ALLOWLIST = "ip_allowlist"
NONE = "none"  # explicit opt-out: the source is accepted unverified (development only)
KNOWN = frozenset(SCHEMES) | {IP_ALLOWLIST, NONE}


class Chain:
    def __init__(self, checks: list[tuple[str, Verifier]]) -> None:
        self.checks = checks
        self.names = [n for n, _ in checks]

    def __call__(self, req: Inbound, now: float) -> str | None:
        for _, check in self.checks:
            reason = check(req, now)
            if reason is not None:
                return reason
        return None


def build(schemes: list[str], opts: SourceOptions, secrets: list[str], ip_allowlist: list[str]) -> Chain:
    """Compile the checks of one source; ValueError (with the reason) for a configuration that can't work."""
    unknown = [s for s in schemes if s not in KNOWN]
    if unknown:
        raise ValueError(f"unknown verification scheme(s) {unknown}; known: {sorted(KNOWN)}")
    if not schemes and not ip_allowlist:
        raise ValueError("no verification configured: set verify = [...] (or ['none'] to accept unverified "
                         "deliveries, for development only)")
    if NONE in schemes and len(schemes) > 1:
        raise ValueError("'none' cannot be combined with other schemes")
    if IP_ALLOWLIST in schemes and not ip_allowlist:
        raise ValueError("scheme 'ip_allowlist' needs a non-empty ip_allowlist")
    checks: list[tuple[str, Verifier]] = []
    if opts.https_only:
        checks.append(("https_only", network.https_only))
    if ip_allowlist:  # listed addresses always apply, named in verify or not
        checks.append((IP_ALLOWLIST, network.allowlist(ip_allowlist)))
    needs_secret = [s for s in schemes if s in SCHEMES]
    if needs_secret and not secrets:
        raise ValueError(f"scheme(s) {needs_secret} need at least one secret")
    for name in needs_secret:
        checks.append((name, SCHEMES[name].build(opts, secrets)))
    return Chain(checks)


Signer = Callable[[SourceOptions, str, Outbound, float], None]


def signers(schemes: list[str]) -> list[Signer]:
    """The sending side of a source's schemes, in an order where body signatures see the final body."""
    return [SCHEMES[s].sign for s in schemes if s in SCHEMES]

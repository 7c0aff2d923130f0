"""Configured sources compiled once at start-up into what the request path needs: the verification chain, allowed
methods and content types, stored headers, trusted proxies. A source that can't work fails start-up naming its key."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from attrib.settings import ConfigError, Settings, SourceSettings, key_name
from ingest.verify import chain, network
from ingest.verify.options import TOKEN_HEADER_DEFAULTS, SourceOptions

# Headers worth keeping with the raw delivery (idempotency keys, transport facts); never credentials.
DEFAULT_STORED_HEADERS = ("content-type", "content-encoding", "content-length", "user-agent", "x-forwarded-for",
                          "x-forwarded-proto", "x-request-id", "webhook-id", "webhook-timestamp", "svix-id",
                          "svix-timestamp", "x-github-delivery")
NEVER_STORED = frozenset({"authorization", "proxy-authorization", "cookie", "linkrunner-key", "stripe-signature",
                          "webhook-signature", "svix-signature", "x-hub-signature", "x-hub-signature-256"})


@dataclass(frozen=True)
class SourcePlan:
    settings: SourceSettings
    options: SourceOptions
    verify: chain.Chain
    methods: frozenset[str]
    content_types: frozenset[str]
    stored_headers: tuple[str, ...]
    trusted: tuple[network.Network, ...]
    url_secret_param: str | None  # set when the source uses url_secret: stripped from stored query/path

    @property
    def name(self) -> str:
        return self.settings.name


def compile_source(src: SourceSettings, index: int, s: Settings) -> SourcePlan:
    try:
        opts = SourceOptions.model_validate(src.options)
    except ValidationError as exc:
        lines = [f"{key_name('sources', index, 'options', *e['loc'])}: {e['msg']}"
                 for e in exc.errors(include_url=False, include_input=False)]
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    if opts.token_header is None:
        opts = opts.model_copy(update={"token_header": TOKEN_HEADER_DEFAULTS.get(src.mmp, "x-webhook-token")})
    secrets = [x.get_secret_value() for x in src.secrets]
    try:
        trusted = network.networks([*s.ingest.trusted_proxies, *opts.trusted_proxies])
        network.networks(src.ip_allowlist)
    except ValueError as exc:
        key = key_name("sources", index, "ip_allowlist") if src.ip_allowlist else key_name("sources", index)
        raise ConfigError(f"invalid settings:\n  {key}: bad CIDR: {exc}") from None
    try:
        verify = chain.build(list(src.verify), opts, secrets, list(src.ip_allowlist))
    except ValueError as exc:
        raise ConfigError(f"invalid settings:\n  {key_name('sources', index, 'verify')}: {exc} "
                          f"(source {src.name!r})") from None
    secret_headers = {opts.hmac_header.lower(), opts.stripe_header.lower(), (opts.token_header or "").lower(),
                      opts.standard_webhooks_prefix + "signature"}
    stored = tuple(h for h in dict.fromkeys([*DEFAULT_STORED_HEADERS, *(h.lower() for h in opts.store_headers)])
                   if h not in NEVER_STORED and h not in secret_headers)
    return SourcePlan(
        settings=src, options=opts, verify=verify, methods=frozenset(src.methods),
        content_types=frozenset(c.lower() for c in opts.content_types), stored_headers=stored, trusted=trusted,
        url_secret_param=opts.url_secret_param if "url_secret" in src.verify else None,
    )


def compile_all(s: Settings) -> dict[str, SourcePlan]:
    return {src.name: compile_source(src, i, s) for i, src in enumerate(s.sources)}

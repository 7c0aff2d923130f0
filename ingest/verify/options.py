"""Typed view of a source's ``options`` table as the ingress reads it (other keys belong to the normalizers and are
ignored here). Defaults follow each MMP's documented header names (../shared/reference/signatures.md §6)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TOKEN_HEADER_DEFAULTS = {"linkrunner": "linkrunner-key", "appsflyer": "authorization"}


class SourceOptions(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    # hmac: HMAC of the raw body in one header
    hmac_header: str = "x-signature"
    hmac_encoding: Literal["hex", "base64"] = "hex"
    hmac_prefix: str = Field("", description="e.g. 'sha256=' (GitHub style); stripped before decoding")
    hmac_algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    hmac_secret_encoding: Literal["utf8", "base64"] = "utf8"
    # standard_webhooks: {id}.{timestamp}.{body}, base64 v1 signatures, whsec_ secrets
    standard_webhooks_prefix: Literal["webhook-", "svix-"] = "webhook-"
    # stripe: t=…,v1=… over {t}.{body}, whole secret string as key
    stripe_header: str = "stripe-signature"
    # standard_webhooks + stripe: replay window (seconds); future_tolerance_s defaults to the same
    tolerance_s: float = Field(300.0, gt=0)
    future_tolerance_s: float | None = Field(None, ge=0)
    # token: a static secret in a header
    token_header: str | None = None  # default per MMP (TOKEN_HEADER_DEFAULTS), else x-webhook-token
    token_prefix: str = Field("", description="e.g. 'Bearer '")
    # url_secret: ?secret=… (name configurable) or a trailing path segment /webhooks/{source}/{secret}
    url_secret_param: str = "secret"
    # transport
    https_only: bool = False
    trusted_proxies: list[str] = Field(default_factory=list, description="added to ingest.trusted_proxies")
    content_types: list[str] = Field(
        default_factory=lambda: ["application/json", "application/x-www-form-urlencoded", "text/plain"])
    store_headers: list[str] = Field(default_factory=list,
                                     description="headers kept in the raw record, added to defaults")
    # durability: how long this source's requests wait for Kafka's ack (default kafka.produce_timeout_s); README
    # "Durability and shutdown" has the per-sender reasoning
    produce_timeout_s: float | None = Field(None, gt=0)
    # ... and after how long an unacknowledged delivery is spooled instead (default ingest.spool_after_s)
    spool_after_s: float | None = Field(None, gt=0)

    def token_header_for(self, mmp: str) -> str:
        return (self.token_header or TOKEN_HEADER_DEFAULTS.get(mmp, "x-webhook-token")).lower()

    @property
    def future_tolerance(self) -> float:
        return self.tolerance_s if self.future_tolerance_s is None else self.future_tolerance_s

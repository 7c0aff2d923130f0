"""GET deliveries: query parameters → the body shape the MMP would POST.

Query parameter names are chosen by whoever writes the callback URL template (Branch Freemarker templates, Adjust and
Kochava macros, Tenjin ``{{macros}}``). A source may map its own names with ``options["query_map"] = {"param":
"dotted.path"}``; Branch also gets a default template (the one in README "Schemas and normalizers") so a typical GET
webhook works unconfigured. Parameters that carry URL secrets are dropped so they never reach ``properties``.
"""

from __future__ import annotations

from typing import Any

from schemas.fields import query_dict

# Names of URL-secret parameters (the documented "secret in the URL" auth); extended by options["secret_params"].
SECRET_PARAMS = frozenset({"secret", "token", "api_key", "apikey", "signature", "sig"})

_TOUCH = "last_attributed_touch_data."
BRANCH_DEFAULT: dict[str, str] = {
    "event": "name",
    "name": "name",
    "id": "id",
    "ts": "timestamp",
    "timestamp": "timestamp",
    "event_timestamp": "event_timestamp",
    "attributed": "attributed",
    "campaign": _TOUCH + "~campaign",
    "campaign_id": _TOUCH + "~campaign_id",
    "channel": _TOUCH + "~channel",
    "feature": _TOUCH + "~feature",
    "partner": _TOUCH + "~advertising_partner_name",
    "ad_set": _TOUCH + "~ad_set_name",
    "ad_set_id": _TOUCH + "~ad_set_id",
    "ad": _TOUCH + "~ad_name",
    "ad_id": _TOUCH + "~ad_id",
    "url": _TOUCH + "+url",
    "deeplink_path": _TOUCH + "$deeplink_path",
    "click_timestamp": _TOUCH + "+click_timestamp",
    "os": "user_data.os",
    "os_version": "user_data.os_version",
    "platform": "user_data.platform",
    "app_version": "user_data.app_version",
    "idfa": "user_data.idfa",
    "idfv": "user_data.idfv",
    "aaid": "user_data.aaid",
    "android_id": "user_data.android_id",
    "dev_id": "user_data.developer_identity",
    "developer_identity": "user_data.developer_identity",
    "revenue": "event_data.revenue",
    "currency": "event_data.currency",
    "transaction_id": "event_data.transaction_id",
}

DEFAULT_MAPS: dict[str, dict[str, str]] = {"branch": BRANCH_DEFAULT}


def _set(out: dict[str, Any], path: str, value: str) -> None:
    *parents, leaf = path.split(".")
    d = out
    for p in parents:
        nxt = d.get(p)
        if not isinstance(nxt, dict):
            nxt = d[p] = {}
        d = nxt
    d.setdefault(leaf, value)


def query_to_body(mmp: str, query_string: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The decoded query as a body dict: mapped names at their paths, every other parameter at the top level."""
    options = options or {}
    mapping = dict(DEFAULT_MAPS.get(mmp, {}))
    custom = options.get("query_map")
    if isinstance(custom, dict):
        mapping.update({str(k): str(v) for k, v in custom.items()})
    extra = options.get("secret_params")
    named = [*(extra if isinstance(extra, list) else [extra]), options.get("url_secret_param")]  # ingress's option too
    secret = SECRET_PARAMS | {p.lower() for p in named if isinstance(p, str)}
    out: dict[str, Any] = {}
    for k, v in query_dict(query_string).items():
        if k.lower() in secret:
            continue
        _set(out, mapping.get(k, k), v)
    return out

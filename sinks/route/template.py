"""``{{ path }}`` templates for destination URLs (values URL-encoded) and POST bodies (values as JSON).

A tag may carry a default: ``{{ attribution.campaign | default:none }}``. A tag without value (absent or null) and
without default follows the destination's ``missing`` policy: ``error`` (the event is dead-lettered for that
destination, reason ``template_missing``), ``empty`` (empty text in URLs, ``null`` in bodies) or ``skip`` (nothing is
sent to that destination).
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal
from urllib.parse import quote

from attrib.errors import AttribError, ConfigurationError, Permanent
from sinks.route.view import MISSING, resolve, text

Missing = Literal["error", "empty", "skip"]
TAG = re.compile(r"\{\{\s*([A-Za-z0-9_.~$-]+)\s*(?:\|\s*default:([^{}]*?))?\s*\}\}")


class TemplateError(ConfigurationError, ValueError):
    """A template that cannot be parsed (reported at start-up)."""


class MissingValue(Permanent):
    """The event lacks a value the template needs (missing = "error"): dead-letter it as template_missing."""

    def __init__(self, path: str) -> None:
        super().__init__(f"no value for {{{{ {path} }}}}")
        self.path = path


class SkipEvent(AttribError):
    """Control flow, not a failure: the destination's policy (missing = "skip") says don't send this event."""


def check(template: str) -> list[str]:
    """The template's paths; raise TemplateError for stray braces."""
    rest = TAG.sub("", template)
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"unbalanced or malformed {{{{ }}}} tag in {template!r}")
    return [m[1] for m in TAG.finditer(template)]


def _value(view: dict[str, Any], m: re.Match[str], missing: Missing) -> Any:
    got = resolve(view, m[1])
    if got is not MISSING:
        return got
    if m[2] is not None:
        return m[2].strip()
    if missing == "error":
        raise MissingValue(m[1])
    if missing == "skip":
        raise SkipEvent(m[1])
    return MISSING


def render_url(template: str, view: dict[str, Any], missing: Missing = "error") -> str:
    """Fill tags with percent-encoded text (every reserved character encoded, UTF-8)."""

    def sub(m: re.Match[str]) -> str:
        v = _value(view, m, missing)
        return "" if v is MISSING else quote(text(v), safe="")

    return TAG.sub(sub, template)


def render_json(template: str, view: dict[str, Any], missing: Missing = "error") -> str:
    """Fill tags with JSON values (strings quoted and escaped): ``{"c": {{ attribution.campaign }}}``."""

    def sub(m: re.Match[str]) -> str:
        v = _value(view, m, missing)
        return "null" if v is MISSING else json.dumps(v, ensure_ascii=False)

    return TAG.sub(sub, template)

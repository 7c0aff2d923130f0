from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.route import template, view
from tests.sinks.route.events import decoded

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


def v(**over):
    return view.build(decoded(**over))


def test_url_encodes_values() -> None:
    x = v(properties={"city": "São Paulo & Rio/?#"})
    url = template.render_url("https://h/x?c={{ properties.city }}&e={{event.name}}&r={{ event.revenue }}", x)
    assert url == "https://h/x?c=S%C3%A3o%20Paulo%20%26%20Rio%2F%3F%23&e=PURCHASE&r=12.5"
    assert parse_qs(urlsplit(url).query)["c"] == ["São Paulo & Rio/?#"]


def test_missing_policies() -> None:
    x = v()
    tpl = "https://h/x?c={{ campaign }}"
    with pytest.raises(template.MissingValue) as e:
        template.render_url(tpl, x, "error")
    assert e.value.path == "campaign"
    assert template.render_url(tpl, x, "empty") == "https://h/x?c="
    with pytest.raises(template.SkipEvent):
        template.render_url(tpl, x, "skip")
    assert template.render_url("https://h/x?c={{ campaign | default:none }}", x, "error") == "https://h/x?c=none"
    assert template.render_json('{"c": {{ campaign }}}', x, "empty") == '{"c": null}'


def test_json_body_template() -> None:
    x = v(properties={"note": 'say "hi"\n'})
    out = json.loads(template.render_json(
        '{"user": {{ user.key }}, "n": {{ properties.note }}, "org": {{ is_organic }}, "touch": {{ first_touch }}}', x))
    assert out["n"] == 'say "hi"\n' and out["org"] is False and out["touch"]["campaign"] == "Winter Sale"


@pytest.mark.parametrize("bad", ["{{ a", "x }}", "{{ }}", "{{ a b }}"])
def test_malformed_templates(bad: str) -> None:
    with pytest.raises(template.TemplateError):
        template.check(bad)


@given(texts)
def test_url_value_round_trips_and_never_breaks_the_url(s: str) -> None:
    x = v(properties={"p": s})
    url = template.render_url("https://h/p/{{ properties.p }}?q={{ properties.p }}", x, "empty")
    parts = urlsplit(url)
    assert parts.netloc == "h" and "#" not in url and url.count("?") == 1
    assert unquote(parts.path[len("/p/"):]) == s
    assert parse_qs(parts.query, keep_blank_values=True).get("q", [""]) == [s]


@given(texts)
def test_json_value_round_trips(s: str) -> None:
    x = v(properties={"p": s})
    assert json.loads(template.render_json('{"p": {{ properties.p }}}', x)) == {"p": s}

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sinks.route import view
from sinks.route.filters import Filter
from tests.sinks.route.events import decoded

texts = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)


def v(**over):
    return view.build(decoded(**over))


def test_branch_style_paths() -> None:
    x = v(properties={"city": "Paris", "cart": {"items": [{"sku": "A1"}]}})
    assert view.resolve(x, "event.name") == "PURCHASE"
    assert view.resolve(x, "event.revenue") == "12.5"
    assert view.resolve(x, "event.time") == "2025-11-30T00:00:00.000Z"
    # in-app event: its attribution comes from the user's touch
    assert view.resolve(x, "attribution.campaign") == "Winter Sale"
    assert view.resolve(x, "properties.city") == "Paris"
    assert view.resolve(x, "properties.cart.items.0.sku") == "A1"
    assert view.resolve(x, "first_touch.media_source") == "Facebook Ads"
    assert view.resolve(x, "properties.nope") is view.MISSING
    assert view.resolve(x, "campaign") is view.MISSING  # null is not present


def test_own_touch_wins_over_inherited() -> None:
    x = v(campaign="Own", event_type="reengagement", event_name="open")
    assert view.resolve(x, "attribution.campaign") == "Own"


@pytest.mark.parametrize(("conds", "events", "want"), [
    ({"event.name": "PURCHASE"}, [], True),
    ({"event.name": "purchase"}, [], False),  # values are exact; the allowlist is case-insensitive
    ({"event.name": "PURCHASE", "properties.city": "Paris"}, [], True),
    ({"event.name": "PURCHASE", "properties.city": "Lyon"}, [], False),
    ({"properties.city": "*"}, [], True),
    ({"properties.zip": "*"}, [], False),
    ({"campaign": "*"}, [], False),
    ({"properties.city": ["Lyon", "Paris"]}, [], True),
    ({"is_organic": False}, [], True),
    ({"is_organic": "false"}, [], True),
    ({"event.revenue": 12.5}, [], True),
    ({}, ["purchase"], True),
    ({}, ["PURCHASE"], True),
    ({}, ["install", "open"], False),
    ({"properties.city": "Paris"}, ["install"], False),
])
def test_conditions(conds, events, want) -> None:
    assert Filter.of(conds, events).matches(v()) is want


def test_bad_path_rejected() -> None:
    with pytest.raises(ValueError):
        Filter.of({"event..name": "x"})


@given(st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), texts, min_size=1, max_size=5))
def test_conditions_taken_from_the_event_match_and_any_change_breaks(props: dict[str, str]) -> None:
    x = v(properties=props)
    conds = {f"properties.{k}": val for k, val in props.items()}
    assert Filter.of(conds).matches(x)
    assert Filter.of({k: "*" for k in conds}).matches(x)
    k0 = next(iter(conds))
    assert not Filter.of({**conds, k0: conds[k0] + "x"}).matches(x)
    assert not Filter.of({**conds, "properties.absent_key_": "*"}).matches(x)


@given(st.recursive(st.none() | st.booleans() | st.integers() | texts,
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(texts, c, max_size=3), max_leaves=10))
def test_resolve_never_raises_on_arbitrary_properties(props) -> None:
    x = v(properties={"p": props})
    got = view.resolve(x, "properties.p")
    assert got is view.MISSING if props is None else got == json.loads(json.dumps(props))
    view.resolve(x, "properties.p.0.a.1")

"""Canonical partners: every sample's partner maps to the expected id; keys are stable; the file is well-formed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attrib.errors import ConfigurationError
from schemas import partners
from schemas.normalize import normalize
from tests.schemas.conftest import SAMPLES
from tests.schemas.test_samples import raw_delivery, source_for

# sample id → canonical partner of what its MMP sent (media_source after normalization)
EXPECTED = {
    "adjust_01_install_android_get": "google_ads", "adjust_02_event_revenue_ios_cents": "apple_search_ads",
    "adjust_03_session_organic": "organic", "adjust_05_reinstall_same_adid": "organic",
    "adjust_06_click_no_adid": "tiktok", "adjust_08_ad_revenue_sub_cent": "organic",
    "appsflyer_01_install_nonorganic_android_all_strings": "meta",
    "appsflyer_02_inapp_purchase_ios_revenue_string": "google_ads",
    "appsflyer_03_organic_install_nulls_typed_legacy_v2": "organic",
    "appsflyer_05_reattribution_retargeting": "criteo", "appsflyer_06_reengagement_inapp_signup": "email",
    "appsflyer_08_inapp_purchase_jpy_selected_currency": "organic",
    "branch_legacy_07_click": "email", "branch_legacy_08_install_referred_android": "whatsapp",
    "branch_v2_01_open_attributed_ios_doc_shape": "meta_organic",
    "branch_v2_02_install_android_paid_string_booleans": "meta",
    "branch_v2_04_reinstall_organic_numeric_id": "organic", "branch_v2_06_get_freemarker_template_unicode": "line",
    "kochava_01_custom_postback_install_get": "ironsource", "linkrunner_01_install_meta_android": "meta",
    "linkrunner_02_signup_organic_unicode": "organic", "linkrunner_03_signup_organic_retry_duplicate": "organic",
    "linkrunner_05_install_minimal_omitted_fields": "tiktok", "singular_01_install_android": "unity",
    "tenjin_01_install_get": "applovin",
}


def test_every_sample_with_a_partner_maps_to_its_canonical_id() -> None:
    pm = partners.load()
    got = {}
    for s in SAMPLES:
        [ev] = normalize(source_for(s), raw_delivery(s))
        if ev["media_source"]:
            partner, mapped = pm.resolve(ev["media_source"])
            assert mapped, f"{s['sample_id']}: {ev['media_source']!r} is not in schemas/partners.csv"
            assert partner is not None
            got[s["sample_id"]] = partner.id
    assert got == EXPECTED


def test_spellings_across_mmps_meet() -> None:
    pm = partners.load()
    ids = {raw: pm.resolve(raw)[0].id for raw in (  # type: ignore[union-attr]
        "Facebook Ads", "META", "Facebook Installs", "googleadwords_int", "Google Ads UAC", "GOOGLE",
        "bytedanceglobal_int", "TIKTOK", "TikTok", "Apple Search Ads", "APPLE_SEARCH_ADS", "snapchat_int",
        "Unity Ads", "unityads_int", "applovin", "AppLovin", "ironSource", "moloco_int", "Twitter", "organic")}
    assert ids == {
        "Facebook Ads": "meta", "META": "meta", "Facebook Installs": "meta", "googleadwords_int": "google_ads",
        "Google Ads UAC": "google_ads", "GOOGLE": "google_ads", "bytedanceglobal_int": "tiktok", "TIKTOK": "tiktok",
        "TikTok": "tiktok", "Apple Search Ads": "apple_search_ads", "APPLE_SEARCH_ADS": "apple_search_ads",
        "snapchat_int": "snap", "Unity Ads": "unity", "unityads_int": "unity", "applovin": "applovin",
        "AppLovin": "applovin", "ironSource": "ironsource", "moloco_int": "moloco", "Twitter": "x",
        "organic": "organic"}
    assert pm.resolve("Facebook Ads")[0] == partners.Partner("meta", "Meta")


def test_every_file_row_names_its_source_and_one_name_per_partner() -> None:
    rows = partners.read()
    assert all(r.source and r.evidence in {"sample", "doc", "convention"} for r in rows)
    names: dict[str, set[str]] = {}
    for r in rows:
        names.setdefault(r.partner.id, set()).add(r.partner.name)
    assert all(len(n) == 1 for n in names.values()), names


@given(st.text(max_size=40))
def test_key_is_normalized_and_stable(raw: str) -> None:
    k = partners.key(raw)
    if not raw:
        assert k == ""
        return
    assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*|u_[0-9a-f]{1,16}", k), k
    assert partners.key(k) == k  # a key is its own key
    assert partners.key(raw.upper() if raw.isascii() else raw) == k or not raw.isascii()
    assert partners.key(f"  {raw} ") == k or k.startswith("u_")


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=30).filter(
    lambda s: any(c.isalnum() for c in s)))
def test_unknown_values_are_their_own_partner_case_and_punctuation_blind(raw: str) -> None:
    pm = partners.PartnerMap([])
    partner, mapped = pm.resolve(raw)
    assert not mapped and partner is not None
    assert partner.id == partners.key(raw) and partner.name == raw.strip()
    assert pm.resolve(raw.upper().replace(" ", "-"))[0].id == partner.id  # type: ignore[union-attr]


def test_settings_add_and_override() -> None:
    pm = partners.load({"My Network": "mynet", "Facebook Ads": "meta_paid"}, {"mynet": "My Net",
                                                                              "meta_paid": "Meta paid"})
    assert pm.resolve("my-network") == (partners.Partner("mynet", "My Net"), True)
    assert pm.resolve("facebook ads") == (partners.Partner("meta_paid", "Meta paid"), True)
    assert pm.resolve("META") == (partners.Partner("meta", "Meta"), True)
    assert partners.load({"Custom": "meta"}).resolve("custom") == (partners.Partner("meta", "Meta"), True)
    with pytest.raises(ConfigurationError, match=r"reporting\.partner_names"):
        partners.load({"Custom": "brand_new"})
    with pytest.raises(ConfigurationError, match="snake_case"):
        partners.load({"Custom": "Bad Id"}, {"Bad Id": "x"})


@pytest.mark.parametrize(("line", "why"), [
    ("Foo,foo,Foo,all,doc,", "names its source"),
    ("Foo,foo,Foo,all,rumour,somewhere", "evidence must be"),
    (",foo,Foo,all,doc,somewhere", "required"),
    ("Foo,foo,Foo,all,doc", "columns"),
])
def test_bad_rows_name_their_line(tmp_path: Path, line: str, why: str) -> None:
    f = tmp_path / "p.csv"
    f.write_text(",".join(partners.COLUMNS) + "\nBar,bar,Bar,all,doc,ok\n" + line + "\n")
    with pytest.raises(ConfigurationError, match=rf"p\.csv:3: .*{why}"):
        partners.read(f)


def test_conflicting_spellings_are_refused(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text(",".join(partners.COLUMNS) + "\nFoo Ads,foo,Foo,all,doc,a\nfoo-ads,bar,Bar,all,doc,b\n")
    with pytest.raises(ConfigurationError, match="same key 'foo_ads'"):
        partners.load(path=f)

from __future__ import annotations

import pytest

from hub.ble.profiles import (
    Advertisement,
    default_profiles_dir,
    load_profiles,
    match_profile,
    uuid16,
)
from hub.errors import ConfigError

PROFILES = load_profiles(default_profiles_dir())
BY_NAME = {p.name: p for p in PROFILES}
BASE = "0000{}-0000-1000-8000-00805f9b34fb"


def test_every_shipped_profile_loads_and_validates():
    assert set(BY_NAME) == {
        "blood_pressure",
        "health_thermometer",
        "heart_rate",
        "pulse_oximeter",
        "glucose",
        "weight_scale",
        "current_time",
        "and_ua651",
        "roche_accuchek",
        "beurer_bm85",
    }
    for profile in PROFILES:
        assert profile.subscribe, profile.name
        assert profile.match.specificity() > 0, profile.name


def test_vendor_profiles_extend_their_base():
    bm85 = BY_NAME["beurer_bm85"]
    assert bm85.quirks == ("beurer_bm85",)
    assert bm85.subscribe == BY_NAME["blood_pressure"].subscribe
    assert bm85.bonding == "required"
    and_cuff = BY_NAME["and_ua651"]
    assert (and_cuff.clock.method, and_cuff.clock.characteristic, and_cuff.clock.write_first) == (
        "date_time",
        "2a08",
        True,
    )
    roche = BY_NAME["roche_accuchek"]
    assert roche.racp == BY_NAME["glucose"].racp
    assert roche.clock.method == "date_time"


def test_glucose_profile_downloads_with_racp():
    glucose = BY_NAME["glucose"]
    assert glucose.racp is not None
    assert (glucose.racp.characteristic, glucose.racp.measurement, glucose.racp.context) == (
        "2a52",
        "2a18",
        "2a34",
    )
    assert [s.characteristic for s in glucose.subscribe] == ["2a18", "2a34", "2a52"]


@pytest.mark.parametrize(
    ("adv", "expected"),
    [
        (Advertisement("UA-767", (BASE.format("1810"),), ()), "blood_pressure"),
        (Advertisement("BM85 1234", ("1810",), ()), "beurer_bm85"),
        (Advertisement("A&D_UA-651_8F1A", ("0x1810",), ()), "and_ua651"),
        (Advertisement("meter+06354651", ("1808",), ()), "roche_accuchek"),
        (Advertisement(None, ("1808",), ()), "glucose"),
        (Advertisement("Thermo", ("1809", "180a"), ()), "health_thermometer"),
        (Advertisement("strap", ("180D",), ()), "heart_rate"),
        (Advertisement("PO60", ("1822",), (0x0157,)), "pulse_oximeter"),
        (Advertisement("scale", ("181d",), ()), "weight_scale"),
        (Advertisement("clock", ("1805",), ()), "current_time"),
        (Advertisement("BM85", ("180d",), ()), "heart_rate"),
    ],
)
def test_the_most_specific_matching_profile_wins(adv, expected):
    profile = match_profile(adv, PROFILES)
    assert profile is not None
    assert profile.name == expected


@pytest.mark.parametrize(
    "adv",
    [
        Advertisement("BM85", (), ()),
        Advertisement("speaker", ("110b",), (76,)),
        Advertisement(None, ("6e400001-b5a3-f393-e0a9-e50e24dcca9e",), ()),
        Advertisement(None, ("not-a-uuid",), ()),
    ],
)
def test_unknown_devices_match_nothing(adv):
    assert match_profile(adv, PROFILES) is None


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("2A35", "2a35"),
        ("0x2a35", "2a35"),
        (" 2a35 ", "2a35"),
        (BASE.format("2a35"), "2a35"),
        (0x2A35, "2a35"),
    ],
)
def test_uuid16_spellings(spelling, expected):
    assert uuid16(spelling) == expected


@pytest.mark.parametrize(
    "bad", ["2a3", "2a355", "zzzz", "6e400001-b5a3-f393-e0a9-e50e24dcca9e", 0x10000, -1]
)
def test_uuid16_refuses_what_is_not_a_sig_uuid(bad):
    with pytest.raises(ValueError, match="UUID"):
        uuid16(bad)


def _write(tmp_path, name, text):
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")


GOOD = (
    'name: {n}\ntitle: t\nfamily: f\nmatch: {{service_uuids: ["1810"]}}\n'
    'subscribe: [{{characteristic: "2a35", mode: indicate}}]\n'
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("name: p\n", "subscribe"),
        (GOOD.format(n="p") + "quirks: [made_up]\n", "unknown quirks"),
        (GOOD.format(n="p") + "bonding: sometimes\n", "bonding"),
        (GOOD.format(n="p") + "surprise: 1\n", "surprise"),
        (GOOD.format(n="p").replace('"2a35"', '"xyz"'), "not a 16-bit"),
        (
            GOOD.format(n="p").replace("match: {", 'match: {name_pattern: "([", '),
            "regular expression",
        ),
        (GOOD.format(n="other"), "file name"),
        (GOOD.format(n="p").replace('"2a35"', '"2a00"'), "no parser"),
        ("- a list\n", "mapping"),
        ("name: [unclosed\n", "cannot read"),
        ("name: p\nextends: nothing\n", "not a base profile"),
    ],
)
def test_broken_profiles_are_refused_with_file_and_field(tmp_path, text, reason):
    _write(tmp_path, "p", text)
    with pytest.raises(ConfigError, match=reason) as info:
        load_profiles(tmp_path)
    assert "p.yaml" in str(info.value) or "profiles" in str(info.value)


def test_two_profiles_matching_the_same_devices_are_refused(tmp_path):
    _write(tmp_path, "a", GOOD.format(n="a"))
    _write(tmp_path, "b", GOOD.format(n="b"))
    with pytest.raises(ConfigError, match="exactly the same devices"):
        load_profiles(tmp_path)


def test_an_empty_directory_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no device profiles"):
        load_profiles(tmp_path)

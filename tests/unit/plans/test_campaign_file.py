"""The campaign file: the bundled default loads (package data), quantities are parsed at the
boundary, unknown keys and bad values are refused with one line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from couponlab.plans.campaign_file import (
    CampaignFileError,
    Gradient,
    bundled_campaign_path,
    load_campaign,
    parse_campaign,
)


def test_the_bundled_campaign_spans_both_systems_with_proposals() -> None:
    c = load_campaign()
    assert bundled_campaign_path().is_file() and c.lab == "sim"
    systems = [k.system for k in c.coupons]
    assert len(c.coupons) >= 4 and {"Ni-Cr", "Ni-Al"} <= set(systems)
    assert any(k.gradient == "proposed" for k in c.coupons)
    assert c.exposure.hold == 20 * 3600.0 and c.exposure.hot == 1100.0
    assert c.batches() == [[0, 1], [2, 3], [4, 5]]
    assert c.coupon_ids()[0] == "nicr-nial-C01"


def _base(**kw: Any) -> dict[str, Any]:
    return {
        "id": "t1",
        "coupons": [{"system": "Ni-Cr", "gradient": {"low": 0, "high": 0.5}}],
        **kw,
    }


def test_quantities_are_parsed_with_their_units() -> None:
    c = parse_campaign(
        _base(
            exposure={
                "hot": "1373.15 K",
                "cold": "800 degC",
                "hold": "90 min",
                "scan_interval": "30 min",
                "ramp_rate": "0.5 K/s",
            },
            specimens=["0.5 cm"],
        )
    )
    assert c.exposure.hot == pytest.approx(1100.0)
    assert c.exposure.hold == 5400.0 and c.exposure.ramp_rate == pytest.approx(30.0)
    assert c.specimens == [5.0]
    assert c.spec()["exposure"]["hold"] == 5400.0
    assert parse_campaign(c.spec()) == c  # the registry's spec reads back the same


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (_base(colour="red"), "colour"),
        (_base(exposure={"hold": "20 mm"}), "exposure.hold"),
        (_base(exposure={"hot": "20 delta_degC"}), "exposure.hot"),
        (_base(carrier_batch=0), "carrier_batch"),
        (_base(id="no spaces"), "(file)"),
        ({"id": "t", "coupons": [{"system": "Fe-Cr", "gradient": "proposed"}]}, "coupons.0"),
        (
            {"id": "t", "coupons": [{"system": "Ni-Al", "gradient": {"low": 0, "high": 0.6}}]},
            "coupons.0",
        ),
        ({"id": "t", "coupons": [{"system": "Ni-Cr", "gradient": "guess"}]}, "coupons.0"),
        ({"id": "t", "coupons": []}, "coupons"),
        ([1, 2], "mapping"),
    ],
)
def test_bad_campaigns_are_refused_naming_the_key(data: Any, key: str) -> None:
    with pytest.raises(CampaignFileError, match=key.replace("(", r"\(").replace(")", r"\)")):
        parse_campaign(data)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CampaignFileError, match="cannot read"):
        load_campaign(tmp_path / "none.yaml")


def test_gradient_low_must_be_below_high() -> None:
    with pytest.raises(ValueError, match="below"):
        Gradient(low=0.3, high=0.3)

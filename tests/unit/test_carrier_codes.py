"""One carrier code per carrier, whichever source names it."""

from __future__ import annotations

import pytest

from models.carrier_codes import ALIASES, carrier_code, fold
from models.effects import tracking_url
from models.events import tracking_key


@pytest.mark.parametrize("names, code", [
    # fulfillment center, X12 SCAC, AfterShip slug, Shippo token, EasyPost name
    (["UPS", "UPSN", "ups", "United Parcel Service", "UPS Ground"], "ups"),
    (["USPS", "usps", "U.S. Postal Service"], "usps"),
    (["FedEx", "FedEx Ground", "FDEG", "FDEN", "FDXE", "fedex", "FedExSmartPost", "FXFE"], "fedex"),
    (["DHL Express", "dhl_express", "DHLExpress", "dhl"], "dhlexpress"),
    (["DHL eCommerce", "dhl_ecommerce", "dhl-global-mail", "DhlEcs"], "dhlecommerce"),
    (["OnTrac", "ontrac", "LaserShip", "lasership"], "ontrac"),
    (["Amazon Logistics", "AmazonShipping", "amazon", "AMZL_US"], "amazon"),
    (["Canada Post", "canada-post", "canada_post", "CanadaPost"], "canadapost"),
    (["Purolator", "purolator"], "purolator"),
])
def test_every_source_name_of_a_carrier_gives_one_code(names, code):
    assert {carrier_code(name) for name in names} == {code}


def test_fulfillment_name_and_scac_meet_on_one_tracking_key():
    assert tracking_key("UPS", "1z999") == tracking_key("UPSN", "1Z999")
    assert carrier_code("DHL Express") == carrier_code("dhl_express")


def test_ups_freight_scac_is_not_ups_parcel():
    assert carrier_code("UPGF") != carrier_code("UPS")


def test_an_unknown_carrier_keeps_a_folded_spelling_that_matches_itself():
    spellings = ["Acme Courier", "acme-courier", "ACME_COURIER", " acme.courier "]
    assert {carrier_code(s) for s in spellings} == {"acmecourier"}


def test_each_alias_names_one_carrier_and_codes_name_themselves():
    aliases = [alias for names in ALIASES.values() for alias in names]
    assert len(aliases) == len(set(aliases))
    assert all(alias == fold(alias) for alias in aliases)
    assert all(carrier_code(code) == code for code in ALIASES)


@pytest.mark.parametrize("name, host", [("UPSN", "ups.com"), ("FDEG", "fedex.com"), ("USPS", "usps.com"),
                                        ("dhl_express", "dhl.com")])
def test_tracking_links_still_key_on_the_carrier_codes(name, host):
    assert host in tracking_url(carrier_code(name), "123")


def test_a_carrier_without_a_known_tracking_page_gets_no_made_up_link():
    assert tracking_url("acme-courier", "AC1") == ""
    assert tracking_url("UPS", "1Z 9&x") == "https://www.ups.com/track?tracknum=1Z%209%26x"

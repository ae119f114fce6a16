"""One carrier code per carrier, whatever name a source uses for it.

A fulfillment center says "UPS", an X12 214 carries the SCAC "UPSN", AfterShip the slug
"ups", Shippo "ups", EasyPost "UPS". Links and scans must agree on one code, or a scan
never finds its order. ``carrier_code`` folds every known alias to trackline's code; an
unknown name keeps its folded spelling (lower case, no spaces, dashes, dots or
underscores), so a new carrier still matches itself across sources that spell it alike.

Aliases, as folded (``fold``); the codes ups, usps, fedex and dhlexpress are kept because
tracking links (``models.effects``) key on them:

| code          | fulfillment / EasyPost names     | AfterShip, Shippo           | SCAC, other carrier codes |
|---------------|----------------------------------|-----------------------------|---------------------------|
| ups           | UPS, United Parcel Service,      | ups                         | UPSN (UPS parcel)         |
|               | UPS Ground, UPSMailInnovations   |                             |                           |
| usps          | USPS, US Postal Service          | usps                        | USPS                      |
| fedex         | FedEx, FedEx Ground / Express /  | fedex                       | FDEG (Ground), FDEN       |
|               | Home Delivery, FedExSmartPost,   |                             | (Express), FXFE, FXNL     |
|               | FedEx Freight                    |                             | (Freight); FedEx API FDXG,|
|               |                                  |                             | FDXE                      |
| dhlexpress    | DHL Express, DHLExpress          | dhl (AfterShip), dhl_express| —                         |
| dhlecommerce  | DHL eCommerce, DhlEcs            | dhl-global-mail,            | —                         |
|               |                                  | dhl_ecommerce               |                           |
| ontrac        | OnTrac, LaserShip                | ontrac, lasership           | —                         |
| amazon        | Amazon Logistics, AmazonShipping | amazon                      | AMZL_US (Amazon's order   |
|               |                                  |                             | reports)                  |
| canadapost    | Canada Post, Postes Canada,      | canada-post, canada_post    | —                         |
|               | CanadaPost                       |                             |                           |
| purolator     | Purolator                        | purolator                   | —                         |
| tforcefreight | TForce Freight, UPS Freight      | —                           | UPGF                      |

Decisions worth knowing:
- UPGF is the SCAC of UPS Freight, an LTL network sold in 2021 and now TForce Freight: not
  UPS parcel, so it is not ``ups``.
- FedEx Freight (FXFE, FXNL) is still FedEx and fedex.com tracks its PRO numbers, so it is
  ``fedex``; a FedEx SmartPost / Ground Economy label is tracked by FedEx, so ``fedex`` too.
- AfterShip's slug ``dhl`` is DHL Express; DHL eCommerce is a separate network and code.
- LaserShip and OnTrac merged and trade as OnTrac; old LaserShip numbers track there.
- SCACs for DHL, OnTrac, Amazon, Canada Post and Purolator could not be confirmed from a
  published source, so none is listed: an unconfirmed SCAC could fold a stranger in.
"""

from __future__ import annotations

from functools import lru_cache

# trackline code -> every alias seen in the sources' documentation (folded before lookup).
ALIASES: dict[str, tuple[str, ...]] = {
    "ups": ("ups", "upsn", "unitedparcelservice", "upsground", "upsmailinnovations", "upsmi"),
    "usps": ("usps", "unitedstatespostalservice", "uspostalservice"),
    "fedex": ("fedex", "fdeg", "fden", "fdxg", "fdxe", "fxfe", "fxnl", "fedexground", "fedexexpress",
              "fedexhomedelivery", "fedexsmartpost", "fedexgroundeconomy", "fedexfreight", "federalexpress"),
    "dhlexpress": ("dhlexpress", "dhl"),
    "dhlecommerce": ("dhlecommerce", "dhlecs", "dhlglobalmail", "dhlecommerceus"),
    "ontrac": ("ontrac", "lasership"),
    "amazon": ("amazon", "amazonlogistics", "amazonshipping", "amzlus", "amzl"),
    "canadapost": ("canadapost", "postescanada"),
    "purolator": ("purolator",),
    "tforcefreight": ("tforcefreight", "upgf", "upsfreight"),
}
_BY_ALIAS = {alias: code for code, aliases in ALIASES.items() for alias in aliases}


def fold(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in " -_.")


@lru_cache(maxsize=4096)
def carrier_code(name: str) -> str:
    folded = fold(name)
    return _BY_ALIAS.get(folded, folded)

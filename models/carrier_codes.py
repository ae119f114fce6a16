"""One carrier code per carrier, whatever name a source uses for it.

A fulfillment center says "UPS", an X12 214 carries the SCAC "UPSN", AfterShip the slug
"ups", Shippo "ups", EasyPost "UPS". Links and scans must agree on one code, or a scan
never finds its order. ``carrier_code`` folds every known alias to trackline's code; an
unknown name keeps its folded spelling (lower case, no spaces, dashes or underscores), so a
new carrier still matches itself across sources that spell it alike.
"""

from __future__ import annotations

from functools import lru_cache

# trackline code -> every alias seen in the sources' documentation (folded before lookup).
ALIASES: dict[str, tuple[str, ...]] = {
    "ups": ("ups", "upsn", "unitedparcelservice"),
    "usps": ("usps", "unitedstatespostalservice"),
    "fedex": ("fedex", "fdxg", "fdxe", "fedexground", "fedexexpress"),
    "dhlexpress": ("dhlexpress", "dhl"),
}
_BY_ALIAS = {alias: code for code, aliases in ALIASES.items() for alias in aliases}


def fold(name: str) -> str:
    return "".join(ch for ch in name.strip().lower() if ch not in " -_.")


@lru_cache(maxsize=4096)
def carrier_code(name: str) -> str:
    folded = fold(name)
    return _BY_ALIAS.get(folded, folded)

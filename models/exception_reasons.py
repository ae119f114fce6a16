"""Why a carrier reported an exception, from its raw code and message.

| Source    | raw code (as kept in ``raw_code``)                   | reason            |
|-----------|------------------------------------------------------|-------------------|
| AfterShip | Exception_004, Exception_005                         | customs           |
| AfterShip | Exception_007                                        | address_issue     |
| AfterShip | Exception_012                                        | damaged           |
| AfterShip | Exception_013                                        | lost              |
| AfterShip | Exception_008 (refused by recipient)                 | refused           |
| AfterShip | Exception_010, Exception_011                         | returned_to_sender|
| EasyPost  | .../address_correction, damaged, lost, refused,      | same names        |
|           | weather_delay, customs_hold                          |                   |
| Shippo    | .../address_issue, package_damaged, package_lost,    | same meaning      |
|           | package_undeliverable                                | address_issue     |
| X12 214   | AT701 SD (delayed), A7 (refused), A9 (damaged),      | delayed, refused, |
|           | AT702 A2 (incorrect address), AO (weather), BS       | damaged, address, |
|           | (refused)                                            | weather, refused  |

Anything else is read from the words of the code and message; failing that, ``other``.
"""

from __future__ import annotations

from models.events import ExceptionReason as R

_CODES = {
    "exception_004": R.customs, "exception_005": R.customs, "exception_007": R.address_issue,
    "exception_008": R.refused, "exception_010": R.returned_to_sender, "exception_011": R.returned_to_sender,
    "exception_012": R.damaged, "exception_013": R.lost,
    "address_correction": R.address_issue, "address_issue": R.address_issue,
    "package_undeliverable": R.address_issue, "damaged": R.damaged, "package_damaged": R.damaged,
    "lost": R.lost, "package_lost": R.lost, "refused": R.refused, "weather_delay": R.weather,
    "customs_hold": R.customs,
    "sd": R.delayed, "a7": R.refused, "a9": R.damaged, "a2": R.address_issue, "ao": R.weather,
    "bs": R.refused, "bt": R.returned_to_sender, "a3": R.returned_to_sender,
}
_WORDS = [
    ("address", R.address_issue), ("damag", R.damaged), ("lost", R.lost), ("missing", R.lost),
    ("refus", R.refused), ("custom", R.customs), ("weather", R.weather), ("storm", R.weather),
    ("return", R.returned_to_sender), ("delay", R.delayed),
]


def exception_reason(raw_code: str, message: str) -> R:
    # Reason codes come after the status ("failure/damaged", "AP/A2"): most specific last.
    for part in reversed(raw_code.lower().split("/")):
        if part.strip() in _CODES:
            return _CODES[part.strip()]
    text = f"{raw_code} {message}".lower()
    for word, reason in _WORDS:
        if word in text:
            return reason
    return R.other

"""Why a carrier reported an exception, from its raw code and message; and how to say it.

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
| X12 214   | AT701/AT702: the AT702 reason when it names one      | ``X12_REASONS``   |
|           | (table in ``models.carriers.x12_214``), else the     |                   |
|           | AT701 status: SD delayed, A7 refused, A9 damaged,    |                   |
|           | A3 returned to shipper                               |                   |

X12 codes are read by position (``AT701/AT702``), not from one flat table: the same two
letters mean different things as a status and as a reason (AT701 A3 is "returned to
shipper", AT702 A3 "indirect delivery").

Anything else is read from the words of the code and message; failing that, ``other``.

``CUSTOMER_WORDS`` says, for every reason, what happened and what the customer can do next,
one short sentence each: the words of the customer's ``exception`` update.
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
}
_WORDS = [
    ("address", R.address_issue), ("damag", R.damaged), ("lost", R.lost), ("missing", R.lost),
    ("refus", R.refused), ("custom", R.customs), ("weather", R.weather), ("storm", R.weather),
    ("return", R.returned_to_sender), ("delay", R.delayed),
]

# X12 214 AT701 shipment status codes that are themselves a reason.
X12_STATUS_REASONS: dict[str, R] = {
    "SD": R.delayed, "A7": R.refused, "A9": R.damaged, "A3": R.returned_to_sender,
}
# X12 214 AT702 (element 1651) -> reason; None: the code reports nothing gone wrong.
X12_REASONS: dict[str, R | None] = {
    "NS": None, "A3": None, "AD": None, "AZ": None, "BJ": None, "BK": None, "CB": None, "CC": None,
    "A1": R.missed_delivery, "BH": R.missed_delivery,
    "A2": R.address_issue, "A5": R.address_issue, "A6": R.address_issue,
    "AQ": R.recipient_unavailable, "C4": R.recipient_unavailable,
    "AN": R.business_closed, "B1": R.business_closed, "B9": R.business_closed, "C5": R.business_closed,
    "AO": R.weather,
    "AK": R.damaged,
    "BS": R.refused,
    "BT": R.returned_to_sender,
    "AP": R.customs, "AR": R.customs, "AS": R.customs, "BC": R.customs, "BD": R.customs,
    "CA": R.customs, "F1": R.customs, "F2": R.customs,
    "B2": R.package_held, "B5": R.package_held, "BB": R.package_held, "C1": R.package_held,
    "C3": R.package_held, "C6": R.package_held, "C7": R.package_held, "HB": R.package_held,
    "AT": R.contact_carrier,
    "B4": R.payment_due, "C2": R.payment_due, "C8": R.payment_due, "C9": R.payment_due,
    "AA": R.delayed, "AF": R.delayed, "AH": R.delayed, "AI": R.delayed, "AJ": R.delayed, "AL": R.delayed,
    "AM": R.delayed, "AU": R.delayed, "AW": R.delayed, "AX": R.delayed, "AY": R.delayed, "BE": R.delayed,
    "BF": R.delayed, "BI": R.delayed, "BL": R.delayed, "BM": R.delayed, "BO": R.delayed, "BP": R.delayed,
    "BQ": R.delayed, "BR": R.delayed, "D1": R.delayed, "D2": R.delayed, "P1": R.delayed,
    "AE": R.other, "AG": R.other, "AV": R.other, "B8": R.other, "BG": R.other, "BN": R.other,
}


def x12_reason(status: str, reason: str) -> R | None:
    """The reason an X12 AT702 gives, whatever the AT701 status; None for NS, none or a benign code.

    A code not in ``X12_REASONS`` still says something is off: ``delayed`` on a delay
    status (SD), else ``other``.
    """
    status, reason = status.strip().upper(), reason.strip().upper()
    if not reason:
        return None
    if reason in X12_REASONS:
        return X12_REASONS[reason]
    return R.delayed if status == "SD" else R.other


def _x12_codes(raw_code: str) -> tuple[str, str] | None:
    # "SD" or "SD/AO": one or two two-character codes, as the X12 adapter keeps them.
    parts = [p.strip().upper() for p in raw_code.split("/")]
    if len(parts) > 2 or not all(len(p) == 2 and p.isalnum() for p in parts):
        return None
    return parts[0], parts[1] if len(parts) == 2 else ""


def exception_reason(raw_code: str, message: str) -> R:
    # Reason codes come after the status ("failure/damaged", "AP/A2"): most specific last.
    for part in reversed(raw_code.lower().split("/")):
        if part.strip() in _CODES:
            return _CODES[part.strip()]
    codes = _x12_codes(raw_code)
    if codes is not None:
        status, reason = codes
        found = x12_reason(status, reason)
        if found is not None and found is not R.other:
            return found
        if status in X12_STATUS_REASONS:
            return X12_STATUS_REASONS[status]
        if found is not None:
            return found
    text = f"{raw_code} {message}".lower()
    for word, reason_ in _WORDS:
        if word in text:
            return reason_
    return R.other


# reason -> (what happened, what the customer can do next): one short sentence each.
CUSTOMER_WORDS: dict[R, tuple[str, str]] = {
    R.address_issue: ("The carrier could not deliver your package to the address on it.",
                      "Check your delivery address and contact the carrier to correct it."),
    R.damaged: ("The carrier reported your package damaged on its way to you.",
                "If it arrives damaged, contact us for a replacement or a refund."),
    R.lost: ("The carrier cannot find your package.",
             "We are looking for it with the carrier; contact us if you would like a replacement or a refund."),
    R.refused: ("Delivery of your package was refused.",
                "If you did not refuse it, contact the carrier before it is sent back to us."),
    R.customs: ("Your package is held in customs.",
                "Watch for a message from the carrier or customs asking for documents or duties."),
    R.weather: ("Bad weather is holding up your package.",
                "No action is needed; the carrier will deliver it as soon as it is safe to."),
    R.delayed: ("Your package is running late.",
                "No action is needed; we will tell you when it is on the move again."),
    R.returned_to_sender: ("Your package is on its way back to us.",
                           "Contact us to have it sent again or to get a refund once it arrives."),
    R.recipient_unavailable: ("Nobody was available to receive your package.",
                              "The carrier will try again on the next delivery day; "
                              "you can also redirect it to a pickup point."),
    R.missed_delivery: ("The carrier did not make the delivery it planned today.",
                        "No action is needed; it will try again on the next delivery day."),
    R.business_closed: ("The business at the delivery address was closed when the carrier arrived.",
                        "The carrier will try again on the next business day; check the opening hours it has."),
    R.contact_carrier: ("The carrier needs to hear from you about your package.",
                        "Contact the carrier with your tracking number to arrange delivery."),
    R.package_held: ("The carrier is holding your package.",
                     "Contact the carrier with your tracking number to arrange delivery or pickup."),
    R.payment_due: ("There are charges to pay before your package can be delivered.",
                    "Pay them with the carrier, following the notice it sent, to release your package."),
    R.other: ("There is a problem with the delivery of your package.",
              "Check the carrier's tracking page for details, or reply to this message for help."),
}

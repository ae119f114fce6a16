"""Who sent this webhook: each source's documented signature scheme, checked in constant time.

Pure functions (the time is passed in), so the ingest service stays a thin shell. Every
check takes several secrets, so a source's secret can be rotated without a gap: the new one
is added, the sender switches, the old one is removed.

- AfterShip: header ``aftership-hmac-sha256``, base64 of HMAC-SHA256(secret, raw body).
- EasyPost: header ``X-Hmac-Signature``, ``hmac-sha256-hex=`` + hex HMAC-SHA256 of the raw
  body, keyed by the NFKD-normalised secret, exactly as the official client's
  ``validate_webhook()`` computes it.
- Shippo: a secret ``token`` query parameter on the webhook URL (Shippo's webhook security
  page: Shippo signs nothing, the URL carries the shared token).
- trackline's own scheme, for ``generic``, ``x12-214`` and fulfillment events: header
  ``X-Trackline-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``.
  The timestamp is signed with the body, so an old request replayed outside the window is
  refused even with a valid signature. A carrier implements it in a few lines::

      t = str(int(time.time()))
      mac = hmac.new(secret, t.encode() + b"." + body, hashlib.sha256).hexdigest()
      headers["X-Trackline-Signature"] = f"t={t},v1={mac}"
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum

AFTERSHIP_HEADER = "aftership-hmac-sha256"
EASYPOST_HEADER = "X-Hmac-Signature"
TRACKLINE_HEADER = "X-Trackline-Signature"
SHIPPO_TOKEN_PARAMETER = "token"
REPLAY_WINDOW_SECONDS = 300  # how far a signed timestamp may be from the receiver's clock


class Verdict(StrEnum):
    """Why a request was accepted or refused (the ingest service answers 401 unless ``valid``)."""

    valid = "valid"
    missing = "missing"  # no signature (or token) at all
    malformed = "malformed"  # a signature header that does not parse
    stale = "stale"  # trackline's scheme: the signed time is outside the replay window
    mismatch = "mismatch"  # signed with no secret trackline holds, or the body was changed


def _hmac(secret: bytes, message: bytes) -> hmac.HMAC:
    return hmac.new(secret, message, hashlib.sha256)


def _any_equal(expected: Iterable[str], given: str) -> bool:
    # Compare against every secret, not stopping at the first match: the time taken does
    # not tell which secret (or how many) matched.
    found = False
    for candidate in expected:
        found |= hmac.compare_digest(candidate.encode(), given.encode())
    return found


def aftership_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(_hmac(secret.encode(), body).digest()).decode()


def verify_aftership(body: bytes, header: str | None, secrets: Iterable[str]) -> Verdict:
    if not header:
        return Verdict.missing
    ok = _any_equal((aftership_signature(body, s) for s in secrets), header.strip())
    return Verdict.valid if ok else Verdict.mismatch


def easypost_signature(body: bytes, secret: str) -> str:
    key = unicodedata.normalize("NFKD", secret).encode("utf8")
    return "hmac-sha256-hex=" + _hmac(key, body).hexdigest()


def verify_easypost(body: bytes, header: str | None, secrets: Iterable[str]) -> Verdict:
    if not header:
        return Verdict.missing
    if not header.startswith("hmac-sha256-hex="):
        return Verdict.malformed
    ok = _any_equal((easypost_signature(body, s) for s in secrets), header.strip())
    return Verdict.valid if ok else Verdict.mismatch


def verify_shippo(token: str | None, secrets: Iterable[str]) -> Verdict:
    if not token:
        return Verdict.missing
    return Verdict.valid if _any_equal(secrets, token) else Verdict.mismatch


def trackline_signature(body: bytes, secret: str, at: datetime) -> str:
    """The ``X-Trackline-Signature`` value for ``body`` sent at ``at``."""
    t = str(int(at.timestamp()))
    return f"t={t},v1={_hmac(secret.encode(), t.encode() + b'.' + body).hexdigest()}"


def verify_trackline(body: bytes, header: str | None, secrets: Iterable[str], now: datetime,
                     window_seconds: float = REPLAY_WINDOW_SECONDS) -> Verdict:
    """Check a trackline signature against the receiver's clock ``now`` (processing time:
    the replay window bounds how long a captured request stays usable)."""
    if not header:
        return Verdict.missing
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or not value:
            return Verdict.malformed
        parts.setdefault(name, []).append(value)
    stamps, macs = parts.get("t", []), parts.get("v1", [])
    if len(stamps) != 1 or not macs or not stamps[0].isdigit():
        return Verdict.malformed
    signed_at = int(stamps[0])
    if abs(now.timestamp() - signed_at) > window_seconds:
        return Verdict.stale
    message = stamps[0].encode() + b"." + body
    expected = [_hmac(s.encode(), message).hexdigest() for s in secrets]
    # Several v1 values are allowed: a sender rotating its secret signs with both.
    ok = False
    for given in macs:
        ok |= _any_equal(expected, given)
    return Verdict.valid if ok else Verdict.mismatch

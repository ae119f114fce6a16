"""Webhook signatures, checked against implementations trackline did not write: the official
EasyPost client's validate_webhook() and the openssl command line."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from easypost.errors import SignatureVerificationError
from easypost.util import validate_webhook
from hypothesis import given
from hypothesis import strategies as st

from models.webhook_signatures import (
    EASYPOST_HEADER,
    Verdict,
    aftership_signature,
    easypost_signature,
    trackline_signature,
    verify_aftership,
    verify_easypost,
    verify_shippo,
    verify_trackline,
)

PAYLOADS = Path(__file__).parents[1] / "payloads"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def easypost_body() -> bytes:
    return (PAYLOADS / "easypost_tracker_updated.json").read_bytes()


# "é" composed (NFC) and decomposed (NFKD): EasyPost normalises the secret before keying.
@pytest.mark.parametrize("secret", ["whsec_plain", "s\u00e9cret-\u00fcber", "se\u0301cret"])
def test_an_easypost_signature_made_by_trackline_passes_the_official_client(easypost_body, secret):
    header = easypost_signature(easypost_body, secret)
    assert validate_webhook(easypost_body, {EASYPOST_HEADER: header}, secret)["description"] == "tracker.updated"
    assert verify_easypost(easypost_body, header, [secret]) is Verdict.valid


def test_a_tampered_easypost_body_fails_both_trackline_and_the_official_client(easypost_body):
    header = easypost_signature(easypost_body, "whsec_plain")
    tampered = easypost_body.replace(b"in_transit", b"delivered", 1)
    assert tampered != easypost_body
    with pytest.raises(SignatureVerificationError):
        validate_webhook(tampered, {EASYPOST_HEADER: header}, "whsec_plain")
    assert verify_easypost(tampered, header, ["whsec_plain"]) is Verdict.mismatch


def test_easypost_secrets_rotate_without_a_gap(easypost_body):
    old, new = "whsec_old", "whsec_new"
    for sender_secret in (old, new):  # either may sign while both are configured
        assert verify_easypost(easypost_body, easypost_signature(easypost_body, sender_secret), [old, new]) \
            is Verdict.valid
    assert verify_easypost(easypost_body, easypost_signature(easypost_body, old), [new]) is Verdict.mismatch
    assert verify_easypost(easypost_body, None, [new]) is Verdict.missing
    assert verify_easypost(easypost_body, "sha256=abc", [new]) is Verdict.malformed


def openssl_hmac_base64(body: bytes, secret: str) -> str:
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", secret, "-binary"], input=body,
                            capture_output=True, check=True).stdout
    return base64.b64encode(digest).decode()


def test_an_aftership_signature_is_the_base64_hmac_openssl_computes(easypost_body):
    body = b'{"event":"tracking_update","msg":{"tracking_number":"1Z999","tag":"InTransit"}}'
    for payload in (body, easypost_body):
        expected = openssl_hmac_base64(payload, "aftership-secret")
        assert aftership_signature(payload, "aftership-secret") == expected
        assert verify_aftership(payload, expected, ["other", "aftership-secret"]) is Verdict.valid
        assert verify_aftership(payload + b" ", expected, ["aftership-secret"]) is Verdict.mismatch
    assert verify_aftership(body, "", ["aftership-secret"]) is Verdict.missing


def test_shippo_is_checked_by_its_url_token():
    assert verify_shippo("tok-2", ["tok-1", "tok-2"]) is Verdict.valid
    assert verify_shippo("tok-3", ["tok-1", "tok-2"]) is Verdict.mismatch
    assert verify_shippo(None, ["tok-1"]) is Verdict.missing


def test_a_trackline_signature_is_valid_inside_the_replay_window_and_stale_outside():
    body = b'{"carrier":"ontrac","tracking_number":"OT1","events":[]}'
    header = trackline_signature(body, "carrier-secret", NOW)
    assert verify_trackline(body, header, ["carrier-secret"], NOW) is Verdict.valid
    assert verify_trackline(body, header, ["carrier-secret"], NOW + timedelta(seconds=299)) is Verdict.valid
    # A captured request replayed six minutes later, or a sender clock far ahead, is refused.
    assert verify_trackline(body, header, ["carrier-secret"], NOW + timedelta(minutes=6)) is Verdict.stale
    assert verify_trackline(body, header, ["carrier-secret"], NOW - timedelta(minutes=6)) is Verdict.stale
    assert verify_trackline(body + b"x", header, ["carrier-secret"], NOW) is Verdict.mismatch
    assert verify_trackline(body, header, ["someone-else"], NOW) is Verdict.mismatch


def test_the_trackline_scheme_is_the_few_lines_the_readme_gives_a_carrier():
    body = b"ISA*00*~"
    t = str(int(NOW.timestamp()))
    mac = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", "carrier-secret", "-hex", "-r"],
                         input=t.encode() + b"." + body, capture_output=True, check=True).stdout.split()[0].decode()
    assert verify_trackline(body, f"t={t},v1={mac}", ["carrier-secret"], NOW) is Verdict.valid
    # A sender rotating its secret signs with both; either one known is enough.
    assert verify_trackline(body, f"t={t},v1={'0' * 64},v1={mac}", ["carrier-secret"], NOW) is Verdict.valid
    # The timestamp is signed: moving it to fit the window breaks the signature.
    assert verify_trackline(body, f"t={int(t) + 1},v1={mac}", ["carrier-secret"], NOW) is Verdict.mismatch


@pytest.mark.parametrize("header", ["v1=abc", "t=1,t=2,v1=abc", "t=soon,v1=abc", "t=1;v1=abc", "garbage", "t=,v1="])
def test_a_malformed_trackline_header_is_refused_as_malformed(header):
    assert verify_trackline(b"{}", header, ["s"], NOW) is Verdict.malformed


@given(header=st.text(max_size=200), body=st.binary(max_size=200))
def test_any_header_gets_a_verdict_and_only_a_real_signature_is_valid(header, body):
    for verdict in (verify_trackline(body, header, ["s"], NOW), verify_easypost(body, header, ["s"]),
                    verify_aftership(body, header, ["s"])):
        assert isinstance(verdict, Verdict) and verdict is not Verdict.valid

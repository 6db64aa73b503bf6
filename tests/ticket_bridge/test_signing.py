"""Webhook signatures: HMAC-SHA256 over "<timestamp>." + body, checked in constant time and
only within the tolerance window."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ticket_bridge.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    problem,
    sign,
    signature,
    verify,
)

SECRET = "a-long-shared-secret-0123456789"
BODY = '{"event_id":"e1","ticket":"20260001","action":"note","note":"已电话联系群众"}'.encode()
NOW = 1_767_225_600


def test_sign_matches_an_independent_hmac() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: f"sha256={expected}"}
    assert signature(SECRET, NOW, BODY) == expected


def test_a_fresh_signature_verifies() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    assert verify(SECRET, headers, BODY, now=NOW + 10)
    assert problem(SECRET, headers, BODY, now=NOW + 10) is None


def test_sign_uses_the_current_time_by_default() -> None:
    headers = sign(SECRET, BODY)
    assert verify(SECRET, headers, BODY)


def test_header_names_are_case_insensitive() -> None:
    headers = {k.lower(): v for k, v in sign(SECRET, BODY, timestamp=NOW).items()}
    assert verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(
    ("secret", "body"),
    [
        ("another-secret-0123456789", BODY),  # wrong secret
        (SECRET, BODY.replace(b"note", b"finish", 1)),  # changed body
        (SECRET, BODY + b" "),  # one byte more
        ("", BODY),  # no secret configured never verifies
    ],
)
def test_a_wrong_secret_or_a_changed_body_fails(secret: str, body: bytes) -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    assert not verify(secret, headers, body, now=NOW)
    assert problem(secret, headers, body, now=NOW) == "signature does not match"


def test_the_timestamp_is_part_of_what_is_signed() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    headers[TIMESTAMP_HEADER] = str(NOW + 1)  # a replay with a fresher timestamp
    assert not verify(SECRET, headers, BODY, now=NOW + 1)


@pytest.mark.parametrize("skew", [-301, 301, -10_000, 10_000])
def test_stale_and_future_timestamps_are_refused(skew: int) -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    assert not verify(SECRET, headers, BODY, now=NOW + skew)
    assert "away from our clock" in (problem(SECRET, headers, BODY, now=NOW + skew) or "")


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_timestamps_within_the_tolerance_pass(skew: int) -> None:
    assert verify(SECRET, sign(SECRET, BODY, timestamp=NOW), BODY, now=NOW + skew)


def test_the_tolerance_can_be_narrowed() -> None:
    headers = sign(SECRET, BODY, timestamp=NOW)
    assert verify(SECRET, headers, BODY, now=NOW + 20, tolerance_s=30)
    assert not verify(SECRET, headers, BODY, now=NOW + 40, tolerance_s=30)


@pytest.mark.parametrize(
    ("timestamp", "sig", "why"),
    [
        (None, "good", "missing"),
        (str(NOW), None, "missing"),
        ("", "good", "missing"),
        (f"+{NOW}", "good", "unix seconds"),
        (f"{NOW}.5", "good", "unix seconds"),
        ("１７６７２２５６００", "good", "unix seconds"),  # full-width digits
        (str(NOW), "bare-hex", "must start with sha256="),
        (str(NOW), "sha256=zz", "signature does not match"),
        (str(NOW), "sha256=", "signature does not match"),
    ],
)
def test_malformed_headers_are_refused(timestamp: str | None, sig: str | None, why: str) -> None:
    good = sign(SECRET, BODY, timestamp=NOW)
    headers: dict[str, str] = {}
    if timestamp is not None:
        headers[TIMESTAMP_HEADER] = timestamp
    if sig == "good":
        headers[SIGNATURE_HEADER] = good[SIGNATURE_HEADER]
    elif sig == "bare-hex":
        headers[SIGNATURE_HEADER] = good[SIGNATURE_HEADER].removeprefix("sha256=")
    elif sig is not None:
        headers[SIGNATURE_HEADER] = sig
    assert not verify(SECRET, headers, BODY, now=NOW)
    assert why in (problem(SECRET, headers, BODY, now=NOW) or "")

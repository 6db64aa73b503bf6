"""HMAC-SHA256 signatures on webhook bodies, the same in both directions (our outbox to an
outside system, an outside system to our inbound endpoint).

    X-Banshi-Timestamp: 1767225600                 (unix seconds)
    X-Banshi-Signature: sha256=<hex HMAC-SHA256(secret, b"1767225600." + body)>

The timestamp is inside the signed bytes, so a captured request cannot be replayed with a
fresh timestamp; the tolerance window bounds how long a captured request stays valid (and
the event id makes a replay inside the window a harmless duplicate).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Banshi-Timestamp"
SIGNATURE_HEADER = "X-Banshi-Signature"
SCHEME = "sha256="
TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex digest alone (without the ``sha256=`` scheme)."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers to send with ``body`` (exactly these bytes)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: SCHEME + signature(secret, ts, body)}


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> bool:
    """True when ``headers`` carry a valid signature of ``body`` made within
    ``tolerance_s`` of ``now`` (either side: a clock ahead is as suspect as one behind)."""
    return problem(secret, headers, body, now, tolerance_s) is None


def problem(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    tolerance_s: float = TOLERANCE_S,
) -> str | None:
    """Why ``verify`` would say no (in English, safe to tell the sender: nothing in it helps
    to forge a signature), or None when the signature is good."""
    raw_ts = _header(headers, TIMESTAMP_HEADER).strip()
    given = _header(headers, SIGNATURE_HEADER).strip()
    if not raw_ts or not given:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header"
    # ASCII digits only: int() would also take "+1", " 1", "1_0" and other scripts' digits
    if not (len(raw_ts) <= 12 and raw_ts.isascii() and raw_ts.isdigit()):
        return f"{TIMESTAMP_HEADER} must be unix seconds"
    if not given.startswith(SCHEME):
        return f"{SIGNATURE_HEADER} must start with {SCHEME}"
    ts = int(raw_ts)
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return f"timestamp more than {tolerance_s:g} s away from our clock"
    expected = SCHEME + signature(secret, ts, body)
    if not secret or not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        return "signature does not match"
    return None


def _header(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive, for plain dicts as well as Starlette's and httpx's headers."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value or ""

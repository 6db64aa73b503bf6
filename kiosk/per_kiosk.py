"""Settings that name a device per kiosk: one value for every kiosk, or ``KIOSK=VALUE``
pairs separated by commas, ``*`` for the kiosks not listed::

    HallA4                                   every kiosk
    K01=HallA4,K02=DeskA4,*=HallA4           K01, K02, and every other kiosk
    K01=network://10.0.0.21,K02=usb://0x0416:0x5011

Without ``*`` a kiosk not listed has none. A kiosk id is what the kiosk page sends (its
``?kiosk=K01``): 1-32 letters, digits, ``_``, ``.`` or ``-``. Shared by
BANSHI_KIOSK_PRINTER and BANSHI_FORMS_A4_PRINTER; imports nothing heavy, so settings can
validate with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")
OTHERS = "*"
KIOSK_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KioskMapError(ValueError):
    """One entry is wrong; the message names it (English, for operators)."""

    def __init__(self, entry: str, problem: str) -> None:
        super().__init__(f"entry {entry!r}: {problem}")
        self.entry = entry
        self.problem = problem


def is_keyed(entry: str) -> bool:
    """``K01=…`` rather than a bare value: an ``=`` before any ``:``, so a URL with a
    query (``network://10.0.0.21?timeout=2``) is still one value."""
    key, equals, _ = entry.partition("=")
    return bool(equals) and ":" not in key


def is_mapping(spec: str) -> bool:
    entries = spec.split(",")
    return len(entries) > 1 or is_keyed(entries[0].strip())


def parse_per_kiosk(spec: str, value: Callable[[str], T]) -> dict[str, T]:
    """``spec`` as kiosk -> ``value(text)``; one bare value is ``{"*": value}``, an empty
    spec ``{}``. A bare value's ValueError propagates as ``value`` raised it; in a mapping,
    every problem is a :class:`KioskMapError` naming the entry."""
    spec = spec.strip()
    if not spec:
        return {}
    if not is_mapping(spec):
        return {OTHERS: value(spec)}
    result: dict[str, T] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            raise KioskMapError(raw, "nothing between two commas (or after the last)")
        if not is_keyed(entry):
            raise KioskMapError(entry, "not KIOSK=VALUE: in a list, every entry names its kiosk")
        kiosk, _, text = (p.strip() for p in entry.partition("="))
        if kiosk != OTHERS and not KIOSK_ID.fullmatch(kiosk):
            raise KioskMapError(
                entry,
                f"kiosk id {kiosk!r} must be 1-32 letters, digits, '_', '.' or '-' "
                "('*' for the kiosks not listed)",
            )
        if kiosk in result:
            raise KioskMapError(entry, f"kiosk {kiosk} is listed twice")
        try:
            result[kiosk] = value(text)
        except ValueError as exc:
            raise KioskMapError(entry, str(exc)) from None
    return result


def for_kiosk(mapping: Mapping[str, T], kiosk: str) -> T | None:
    """The kiosk's value, else ``*``'s, else None."""
    return mapping[kiosk] if kiosk in mapping else mapping.get(OTHERS)

"""Masking of what staff lists and resident screens do not need: phone numbers and
resident ID numbers (居民身份证号)."""

from __future__ import annotations

import re

_ID = re.compile(r"(?<![0-9])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9])")
_MOBILE = re.compile(r"(?<![0-9])(1[3-9]\d)\d{4}(\d{4})(?![0-9])")


def mask_phone(phone: str) -> str:
    """13812345678 → 138****5678; short numbers keep only their last four digits."""
    digits = phone.strip()
    if len(digits) >= 11:
        return digits[:3] + "****" + digits[-4:]
    if len(digits) > 4:
        return "*" * (len(digits) - 4) + digits[-4:]
    return digits


def mask_text(text: str) -> str:
    """ID numbers and mobile numbers inside free text (transcripts, summaries)."""
    text = _ID.sub(lambda m: m.group(1) + "********" + m.group(2), text)
    return _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(2), text)

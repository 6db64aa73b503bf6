"""Resident ID numbers (居民身份证号码, GB 11643-1999): checked, masked and hashed.

The queue keeps only an HMAC of the number (to enforce one unserved ticket per person)
and a masked form for the counter; the number itself is never stored.

>>> check_digit("11010519491231002")
'X'
>>> is_valid("11010519491231002X")
True
>>> mask("11010519491231002X")
'110105********002X'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"


def normalise(raw: str) -> str:
    """Spaces out, full-width digits and a lower-case x made plain."""
    table = {ord("０") + i: str(i) for i in range(10)} | {ord("ｘ"): "X", ord("Ｘ"): "X"}
    return raw.translate(table).replace(" ", "").replace("-", "").upper()


def check_digit(first17: str) -> str:
    return _CHECK[sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True)) % 11]


def birth_date(number: str) -> dt.date | None:
    try:
        return dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def problem(number: str, today: dt.date | None = None) -> str | None:
    """What is wrong with an ID number, in Chinese for the resident; None when it is valid."""
    if len(number) != 18:
        return f"身份证号码应为18位，您输入了{len(number)}位。"
    if not (
        number[:17].isdigit() and number.isascii() and (number[17].isdigit() or number[17] == "X")
    ):
        return "身份证号码只能是数字，最后一位可以是X。"
    born = birth_date(number)
    if born is None or born > (today or dt.date.today()) or born.year < 1900:
        return "身份证号码中的出生日期不对，请核对。"
    if check_digit(number[:17]) != number[17]:
        return "身份证号码校验不通过，可能有一位输错了，请核对。"
    return None


def is_valid(number: str) -> bool:
    return problem(number) is None


def age_on(number: str, day: dt.date) -> int:
    born = birth_date(number)
    if born is None:
        return 0
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def mask(number: str) -> str:
    return number[:6] + "*" * 8 + number[14:]


def fingerprint(number: str, secret: str) -> str:
    """A keyed hash: equal for the same person, useless to anyone without the secret."""
    return hmac.new(secret.encode(), b"idcard:" + number.encode(), hashlib.sha256).hexdigest()[:32]

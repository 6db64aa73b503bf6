"""受理号: eight digits a resident can read out over the phone.

Seven digits come from a database counter (so a number is never issued twice, across
processes) passed through a fixed permutation, so that consecutive tickets do not get
neighbouring numbers and a guessed number rarely exists; the eighth is a Luhn check digit,
so a misheard or mistyped digit is caught before a look-up (one wrong digit always, two
swapped neighbours almost always).
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from ticket_bridge.models import Counter

SPACE = 9_000_000  # seven-digit bodies 1000000…9999999: no leading zero to drop
_MULTIPLIER = 7_654_321  # coprime with SPACE (not divisible by 2, 3 or 5): a bijection
_OFFSET = 2_718_281


class NumbersExhausted(RuntimeError):
    pass


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # the digit next to the check digit is doubled
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def format_number(sequence: int) -> str:
    if not 1 <= sequence <= SPACE:
        raise NumbersExhausted(f"ticket sequence {sequence} is outside 1..{SPACE}")
    body = str(1_000_000 + (sequence * _MULTIPLIER + _OFFSET) % SPACE)
    return body + luhn_digit(body)


def is_well_formed(number: str) -> bool:
    """Eight digits with a correct check digit (say so before searching the database)."""
    return (
        len(number) == 8
        and number.isascii()
        and number.isdigit()
        and number[0] != "0"
        and luhn_digit(number[:7]) == number[7]
    )


def next_number(session: Session) -> str:
    """Take the next 受理号 inside the caller's transaction (an atomic increment: two
    processes never read the same value)."""
    value = session.execute(
        update(Counter)
        .where(Counter.name == "ticket_number")
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    ).scalar_one()
    return format_number(int(value))

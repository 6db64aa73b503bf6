"""Chinese spoken numbers as a speech recogniser writes them, turned into digits: the 8-digit
受理号 a caller reads out to check progress, and menu choices said instead of keyed.

Callers read ticket numbers digit by digit, with the telephone readings of 1, 7, 9 and 0
(幺, 拐, 勾, 洞), and the recogniser mixes Chinese numerals, ASCII and full-width digits and
punctuation freely. ``digits_from_speech`` keeps the digits of such a reading and drops what
lies around them (我的受理号是…号, spaces, 、，。-). A number said with place values
(一百二十三, 两万) is read by ``number_from_speech`` instead, which also accepts a plain
digit-by-digit reading, so a menu choice said either way comes out as one int.

>>> digits_from_speech("我的受理号是五二八三 零四幺七")
'52830417'
>>> digits_from_speech("幺三八，１２３４-5678")
'13812345678'
>>> number_from_speech("一千零五")
1005
>>> number_from_speech("一万二")
12000
>>> number_from_speech("我选二")
2
>>> print(number_from_speech("没有号码"))
None
"""

from __future__ import annotations

import re

# What each spoken or written digit stands for. 幺 (1), 拐 (7), 勾 (9) and 洞 (0) are the
# radio and telephone readings, 俩 and 两 colloquial 2, the 大写 forms those of forms and money.
DIGITS: dict[str, int] = {
    **{c: 0 for c in "零〇洞"},
    **{c: 1 for c in "一幺壹"},
    **{c: 2 for c in "二两贰俩"},
    **{c: 3 for c in "三叁"},
    **{c: 4 for c in "四肆"},
    **{c: 5 for c in "五伍"},
    **{c: 6 for c in "六陆"},
    **{c: 7 for c in "七柒拐"},
    **{c: 8 for c in "八捌"},
    **{c: 9 for c in "九玖勾"},
    **{chr(ord("0") + d): d for d in range(10)},
    **{chr(ord("０") + d): d for d in range(10)},
}
# Place values inside a section (below 万) and the section units.
SMALL_UNITS: dict[str, int] = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
BIG_UNITS: dict[str, int] = {"万": 10_000, "萬": 10_000, "亿": 100_000_000}

# Everyday words that hold a numeral character without saying a number ("帮我查一下" is not
# a 1). Removed before anything is read.
NOT_NUMBERS = (
    "一下", "一点儿", "一些", "一遍", "一共", "一起", "一样", "一直", "一会", "一定",
    "统一", "唯一",
)  # fmt: skip
_NOT_NUMBERS = re.compile("|".join(map(re.escape, NOT_NUMBERS)))
# A Latin "o" on its own is a recogniser's spelling of 0 (as in "幺o五"), not part of a word.
_LATIN_O = re.compile(r"(?<![A-Za-z])[oO](?![A-Za-z])")
# Separators that may fall inside one number: spaces, 、，,。.- and the like.
_SEPARATORS = re.compile(r"[\s、，,。.．·\-－—_/]+")


def _clean(text: str) -> str:
    return _LATIN_O.sub("0", _NOT_NUMBERS.sub(" ", text))


def digits_from_speech(text: str) -> str:
    """The ASCII digits of a digit-by-digit reading, everything else dropped.

    A reading with place values (二十, 一百零五) is not digit by digit and gives ``""``: its
    digits alone would be a wrong number; ``number_from_speech`` reads it.

    >>> digits_from_speech("五二八三 零四幺七")
    '52830417'
    >>> digits_from_speech("拐勾洞")
    '790'
    >>> digits_from_speech("二十")
    ''
    """
    cleaned = _clean(text)
    if any(c in SMALL_UNITS or c in BIG_UNITS for c in cleaned):
        return ""
    return "".join(str(DIGITS[c]) for c in cleaned if c in DIGITS)


def number_from_speech(text: str) -> int | None:
    """The one number said in ``text``, with place values (一百二十三 → 123, 十五 → 15,
    一千零五 → 1005, 两万 → 20000, colloquial 一百五 → 150) or digit by digit (二零二四 →
    2024, 3 → 3); ``None`` when there is no number, more than one, or a malformed one.

    >>> number_from_speech("一百二十三")
    123
    >>> number_from_speech("第十五号")
    15
    >>> print(number_from_speech("三号和五号"))
    None
    """
    words = _SEPARATORS.sub("", _clean(text))
    runs = re.findall(f"[{re.escape(''.join([*DIGITS, *SMALL_UNITS, *BIG_UNITS]))}]+", words)
    if len(runs) != 1:
        return None
    run = runs[0]
    if not any(c in SMALL_UNITS or c in BIG_UNITS for c in run):
        return int("".join(str(DIGITS[c]) for c in run))
    return _place_value(run)


def _place_value(run: str) -> int | None:
    """A number written with place values, or ``None`` if the units are out of order, a unit
    other than 十 lacks its digit, or two numbers follow each other without a unit."""
    total = 0  # the sections already closed by 亿 or 万
    section = 0  # the value below the current section unit
    pending: int | None = None  # a number waiting for its unit
    last_small = 10_000  # the last place value seen in this section
    last_big = 10**12
    zero = False  # a 零 since the last unit: a trailing digit is units, not an abbreviation
    for token in _tokens(run):
        if isinstance(token, int):
            if pending is not None:
                return None  # 五六百, or 五零 inside a place-value number
            pending = token
        elif token == "零":
            if pending is not None:
                return None
            zero = True
        elif token in SMALL_UNITS:
            unit = SMALL_UNITS[token]
            if (pending is None and unit != 10) or unit >= last_small:
                return None  # 百 with no digit (十 alone means 一十), or 十百
            section += (1 if pending is None else pending) * unit
            pending, last_small, zero = None, unit, False
        else:
            unit = BIG_UNITS[token]
            if unit >= last_big or (section == 0 and pending is None):
                return None
            total += (section + (pending or 0)) * unit
            section, pending, last_small, last_big, zero = 0, None, 10_000, unit, False
    if pending is not None:
        # 一百五 is 150 and 一万二 is 12,000: a trailing digit right after a unit counts in
        # the next place down, unless a 零 came between (一千零五).
        last = last_small if last_small < 10_000 else last_big
        section += pending if zero or pending >= 10 else pending * (last // 10)
    return total + section


def _tokens(run: str) -> list[int | str]:
    """A run of numerals as numbers (a run of written digits is one number: 12万) and the
    characters 零 and units."""
    tokens: list[int | str] = []
    for written, spoken in re.findall(r"([0-9０-９]+)|(.)", run):
        if written:
            tokens.append(int("".join(str(DIGITS[c]) for c in written)))
        elif spoken in SMALL_UNITS or spoken in BIG_UNITS or DIGITS[spoken] == 0:
            tokens.append("零" if spoken in DIGITS else spoken)
        else:
            tokens.append(DIGITS[spoken])
    return tokens

"""What the hall display shows and says for a call: ``请A012号到A03号窗口办理``.

How a hall says it (and why):

- the ticket number letter by letter and digit by digit, zeros included, 1 as 一 (not the
  radio operators' 幺): residents compare it with the digits printed on their ticket, so
  ``A012`` is ``A零一二号``;
- the window as the number on its sign: ``3号窗口`` is ``三号窗口``, ``12号窗口`` is
  ``十二号窗口``; a window code keeps its letter and drops the padding zero, ``A03号窗口`` is
  ``A三号窗口`` (nobody says 零三号窗口);
- letters are named the way Chinese speakers name them (espeak-ng says ``A`` as 诶, ``B`` as
  必); two letters in a row get a space between them, since espeak-ng reads ``AB`` as an
  English word;
- the sentence twice, as halls do, with a blank line between (espeak-ng pauses 0.6 s at a
  paragraph, 0.4 s at a 。); a recall (重呼) is prefixed once with 重复呼叫.

These are pure functions of the call dict the queue engine publishes (``number``,
``window``, ``window_name``, ``recall``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

DIGITS = "零一二三四五六七八九"
RECALL_PREFIX = "重复呼叫，"
PAUSE = "\n\n"  # between the two sayings
_RUN = re.compile(r"[A-Za-z]+|[0-9]+")


def display_text(call: Mapping[str, Any]) -> str:
    """The line the display shows.

    >>> display_text({"number": "A012", "window": "A03", "window_name": "A03号窗口"})
    '请A012号到A03号窗口办理'
    >>> display_text({"number": "B007", "window": "3"})
    '请B007号到3号窗口办理'
    """
    return f"请{call['number']}号到{window_name(call)}办理"


def spoken_text(call: Mapping[str, Any]) -> str:
    r"""The text given to the speech engine: the sentence twice, a recall prefixed once.

    >>> spoken_text({"number": "A012", "window": "A03", "window_name": "A03号窗口"})
    '请A零一二号，到A三号窗口办理。\n\n请A零一二号，到A三号窗口办理。'
    >>> spoken_text({"number": "C105", "window_name": "12号窗口", "recall": True})
    '重复呼叫，请C一零五号，到十二号窗口办理。\n\n请C一零五号，到十二号窗口办理。'
    """
    once = f"请{spoken_ticket(str(call['number']))}号，到{spoken_window(window_name(call))}办理。"
    return (RECALL_PREFIX if call.get("recall") else "") + once + PAUSE + once


def window_name(call: Mapping[str, Any]) -> str:
    """``window_name`` as published, else made from the window's code.

    >>> window_name({"window": "A03"})
    'A03号窗口'
    """
    return str(call.get("window_name") or f"{call['window']}号窗口")


def spoken_ticket(number: str) -> str:
    """A ticket number as it is called: letters spelled, every digit read.

    >>> spoken_ticket("A012")
    'A零一二'
    >>> spoken_ticket("AB100")
    'A B一零零'
    """
    return _RUN.sub(lambda m: _letters(m[0]) if m[0].isalpha() else _digits(m[0]), number)


def spoken_window(name: str) -> str:
    """A window's name as it is said: letters spelled, numbers read as numbers.

    >>> spoken_window("A03号窗口")
    'A三号窗口'
    >>> spoken_window("3号窗口")
    '三号窗口'
    >>> spoken_window("综合受理区10号窗口")
    '综合受理区十号窗口'
    """
    return _RUN.sub(lambda m: _letters(m[0]) if m[0].isalpha() else cardinal(m[0]), name)


def cardinal(digits: str) -> str:
    """A number up to 9999 in words (larger ones digit by digit).

    >>> [cardinal(n) for n in ("0", "03", "10", "12", "20", "101", "110", "2005")]
    ['零', '三', '十', '十二', '二十', '一百零一', '一百一十', '两千零五']
    """
    n = int(digits)
    if n == 0:
        return DIGITS[0]
    if n > 9999:
        return _digits(str(n))
    words, zero = "", False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d:
            said = "两" if d == 2 and unit in ("百", "千") else DIGITS[d]  # 两百, but 二十
            words += (DIGITS[0] if zero else "") + said + unit
            zero = False
        elif words:
            zero = True  # one 零 for any run of missing places, said only before a digit
    # 十二, not 一十二: the tens alone drop their 一
    return words[1:] if words.startswith("一十") else words


def _digits(run: str) -> str:
    return "".join(DIGITS[int(c)] for c in run)


def _letters(run: str) -> str:
    return " ".join(run.upper())

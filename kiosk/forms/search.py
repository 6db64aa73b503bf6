"""Search over the form samples by Chinese keyword, full pinyin and pinyin initials.

Residents at a kiosk type what they can: 居住证, juzhuzheng, jūzhùzhèng, ju2zhu4zheng4, jzz,
or a mix of whole and cut syllables (juzz, jzzheng). A latin query matches a run of
consecutive syllables where each syllable is given whole or by any prefix of it (so initials
are the shortest case); a Chinese query matches substrings, then shared character pairs.

    >>> from kiosk.forms.search import pinyin_query, syllables_match
    >>> pinyin_query("jūzhùzhèng"), pinyin_query("Ju2 Zhu4 Zheng4")
    ('juzhuzheng', 'juzhuzheng')
    >>> syllables_match("jzz", ["ju", "zhu", "zheng", "shen", "ling"])
    0
    >>> syllables_match("shenl", ["ju", "zhu", "zheng", "shen", "ling"])
    3

Ranking, best first: the title (exact, then from its start, then inside), then a tag, then
the department or a service item's name, then a field label or the summary; among equals,
the form residents open more (views), then the shorter title. Everything is precomputed per
form, so a query is a loop over small lists (bench/forms_search.py measures it)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

CJK = re.compile(r"[\u3400-\u9fff]")
LATIN = re.compile(r"^[a-z]+$")
# weights of where a query matched: the title counts most
TITLE_EXACT, TITLE_START, TITLE, TAG_EXACT, TAG, NAME, DETAIL = 100, 90, 80, 70, 60, 50, 30


@dataclass(frozen=True)
class Entry:
    """One searchable text of a form and its syllables (pinyin, no tones)."""

    text: str
    syllables: tuple[str, ...]
    weight: int  # TITLE, TAG, NAME or DETAIL
    letters: frozenset[str]  # of the syllables: a quick test before matching


def _entry(text: str, weight: int, pinyin: bool = True) -> Entry:
    syllables = to_syllables(text) if pinyin else ()
    return Entry(_norm(text), syllables, weight, frozenset("".join(syllables)))


@dataclass
class Indexed:
    form_id: str
    title: str
    entries: list[Entry]
    bigrams: frozenset[str]  # of the title and tags, for Chinese queries in another order
    views: int = 0


@dataclass(frozen=True)
class Hit:
    form_id: str
    score: float
    matched: str  # the text that matched (title, a tag, …)


@dataclass
class FormIndex:
    """Built from (id, title, tags, names, details) per form; replaced whole on a reload."""

    forms: dict[str, Indexed] = field(default_factory=dict)

    def add(
        self,
        form_id: str,
        title: str,
        tags: Iterable[str],
        names: Iterable[str] = (),
        details: Iterable[str] = (),
    ) -> None:
        tags = list(tags)
        entries = [_entry(title, TITLE)]
        entries += [_entry(t, TAG) for t in tags]
        entries += [_entry(n, NAME) for n in names if n]
        # labels and summaries are matched as Chinese only: their pinyin would match anything
        entries += [_entry(d, DETAIL, pinyin=False) for d in details]
        self.forms[form_id] = Indexed(form_id, title, entries, _bigrams([title, *tags]))

    def set_views(self, views: Mapping[str, int]) -> None:
        for form_id, item in self.forms.items():
            item.views = views.get(form_id, 0)

    def search(self, query: str, limit: int = 50, among: set[str] | None = None) -> list[Hit]:
        q = _norm(query)
        if not q:
            return []
        if CJK.search(q):
            q = _simplified(q)  # 居住證 finds 居住证
        latin = pinyin_query(q) if not CJK.search(q) else ""
        if not CJK.search(q) and not latin:
            return []
        hits = []
        for item in self.forms.values():
            if among is not None and item.form_id not in among:
                continue
            hit = _score_cjk(item, q) if not latin else _score_pinyin(item, latin)
            if hit is not None:
                hits.append(hit)
        views = {h.form_id: self.forms[h.form_id].views for h in hits}
        hits.sort(
            key=lambda h: (-h.score, -views[h.form_id], len(self.forms[h.form_id].title), h.form_id)
        )
        return hits[:limit]


def _score_cjk(item: Indexed, q: str) -> Hit | None:
    """Substrings of the query's words (split by spaces); else shared character pairs."""
    words = q.split()
    best_total = 0.0
    matched = ""
    for word in words:
        best = 0.0
        for e in item.entries:
            if word not in e.text:
                continue
            if e.weight == TITLE:
                score = (
                    TITLE_EXACT
                    if e.text == word
                    else TITLE_START
                    if e.text.startswith(word)
                    else TITLE
                )
            elif e.weight == TAG and e.text == word:
                score = TAG_EXACT
            else:
                score = e.weight
            if score > best:
                best, matched = score, matched or e.text
        if best == 0:
            break  # every word must be found for the substring tier
        best_total += best
    else:
        return Hit(item.form_id, best_total / len(words), matched)
    # 提取公积金 vs 住房公积金提取申请表: no substring, but most of its character pairs
    pairs = _bigrams([q.replace(" ", "")])
    if not pairs:
        return None
    shared = len(pairs & item.bigrams) / len(pairs)
    return Hit(item.form_id, round(20 * shared, 2), item.title) if shared >= 0.5 else None


def _score_pinyin(item: Indexed, q: str) -> Hit | None:
    best = 0.0
    matched = ""
    letters = frozenset(q)
    for e in item.entries:
        # every letter typed comes from a syllable: most entries are out at this test
        if not e.syllables or not letters <= e.letters:
            continue
        start = syllables_match(q, e.syllables)
        if start is None:
            continue
        whole = "".join(e.syllables)
        if e.weight == TITLE:
            if q == whole:
                score = TITLE_EXACT
            elif start == 0:
                score = TITLE_START
            else:
                score = TITLE - min(start, 9)  # earlier in the title is better
        elif e.weight == TAG:
            score = TAG_EXACT if q == whole or q == _initials(e.syllables) else TAG
        else:
            score = e.weight
        if score > best:
            best, matched = score, e.text
    return Hit(item.form_id, best, matched) if best else None


def syllables_match(q: str, syllables: tuple[str, ...] | list[str]) -> int | None:
    """Where in ``syllables`` a run starts that ``q`` spells with each syllable given whole
    or by a prefix; None when none does."""
    n, end = len(syllables), len(q)
    for start in range(n):
        if syllables[start][0] != q[0]:
            continue
        reached = {0}  # how much of q the syllables from ``start`` so far can spell
        for s in syllables[start:]:
            after = set()
            for i in reached:
                k = 0
                while k < len(s) and i + k < end and q[i + k] == s[k]:
                    k += 1
                    after.add(i + k)
            if end in after:
                return start
            if not after:
                break
            reached = after
    return None


def pinyin_query(q: str) -> str:
    """A latin query as bare pinyin: tone marks and tone digits gone, ü as v, no spaces."""
    q = unicodedata.normalize("NFD", q.lower()).replace("u\u0308", "v").replace("u:", "v")
    q = "".join(c for c in q if not unicodedata.combining(c))
    q = re.sub(r"[\s'’·\-_0-9]", "", q)
    return q if LATIN.fullmatch(q) else ""


def to_syllables(text: str) -> tuple[str, ...]:
    """Chinese text as pinyin syllables without tones; latin words and digits stay as they are."""
    from pypinyin import Style, lazy_pinyin

    out = []
    for s in lazy_pinyin(_norm(text), style=Style.NORMAL, v_to_u=False, errors="default"):
        s = s.strip().lower()
        out += [w for w in re.split(r"[^a-z0-9]+", s) if w]
    return tuple(out)


def initial(text: str) -> str:
    """The pinyin initial letter of a name, for the A–Z department index: 公安分局 → G."""
    syllables = to_syllables(text)
    letter = syllables[0][0].upper() if syllables else "#"
    return letter if "A" <= letter <= "Z" else "#"


@lru_cache(maxsize=8192)  # every listing sorts the same titles and department names again
def sort_key(text: str) -> tuple[str, ...]:
    """Chinese names in pinyin order (as a dictionary or an index lists them)."""
    return to_syllables(text)


@lru_cache(maxsize=1024)
def _simplified(text: str) -> str:
    return str(_t2s().convert(text))


@lru_cache(maxsize=1)
def _t2s() -> Any:
    from opencc import OpenCC

    return OpenCC("t2s")


def _initials(syllables: tuple[str, ...]) -> str:
    return "".join(s[0] for s in syllables)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", re.sub(r"[（）()《》“”\"',，。、：:;；/]", " ", text)).strip()


def _bigrams(texts: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    for t in texts:
        chars = "".join(CJK.findall(t))
        out.update(chars[i : i + 2] for i in range(len(chars) - 1))
    return frozenset(out)

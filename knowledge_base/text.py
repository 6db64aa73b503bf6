"""Chinese text normalisation and tokenisation shared by indexing and questions.

The same pipeline runs on documents and on questions, so that both sides meet in one form:
NFKC (full-width to half-width), traditional to simplified, lower case, emoji and symbols
removed, domain synonyms and common typos mapped to one spelling, toneless pinyin decoded
into the domain words it spells, then jieba (with the domain dictionary) for BM25.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

LEXICON_DIR = Path(__file__).resolve().parent / "lexicon"
USERDICT = LEXICON_DIR / "userdict.txt"
SYNONYMS = LEXICON_DIR / "synonyms.yml"

STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 哦 嗯 么 嘛 我 你 您 他 她 它 我们 你们 他们 是 在 有 和 与 及 或 或者 "
    "要 想 请问 请 问 问下 一下 能 能不能 可以 可不可以 是不是 这 那 这个 那个 这样 那样 "
    "就 都 也 还 "
    "又 给 把 被 让 来 到 从 对 为 以 于 之 其 等 个 些 一 人 着 过 得 地 啥 呗 哈 哎 喂 谢谢 "
    "麻烦 你好 您好 那么 然后 但是 因为 所以 如果 现在 已经 自己 咱 俺 家里 一个".split()
)

# Words that ask about *some* service without saying which: a question made only of these
# and stopwords ("怎么申请呢", "收费吗") cannot be answered without knowing the service.
GENERIC_WORDS = frozenset(
    "怎么 怎么办 怎样 如何 咋 咋办 咋弄 申请 办理 办 办个 办好 办完 弄 搞 需要 什么 哪个 "
    "哪些 哪里 在哪 在哪里 哪儿 窗口 材料 资料 带 要带 带什么 那要 要么 多久 多长时间 时间 "
    "几天 收费 费用 多少 多少钱 钱 条件 流程 手续 要求 证 证件 我想 想办 本人 代办 能办 好办 "
    "事 事情 东西 问题 问个 咨询 一样 还要 还需要 的话".split()
)

# Common question words whose pinyin residents type; decoded alongside the domain lexicon.
_PINYIN_WORDS = (
    "怎么办 怎么 什么 材料 需要 哪里 多久 多少 办理 补办 申请 提取 丢失 过期 换领 首次 费用 "
    "时间 地址 几点 上班 下班 停车 预约 取号 排队 进度 查询 投诉 举报 建议 孩子 老人 报销 备案 "
    "登记 结婚 离婚 退休 失业 贷款 租房 购房 买房 发票 入学 报名 上学 补贴 津贴 怎样 如何 可以 "
    "要带 带什么 在哪 网上 手机 流程 条件 多长时间 能不能 新生儿 出生 户口 迁移 二手房 过户 个税 "
    "退税 营业执照 开店 公司 注册 残疾 低保 高龄 医保 社保 养老 养老金 异地 就医 查档 房子 "
    "丢了 掉了 咋办 坏了 过期了 到期 换证 补证 身份证 政务 中心 在哪里 在哪儿 大厅 几点 开门 关门 "
    "第一次 发票 投诉 退休 结婚证 离婚证 公积金 居住证 户口本 残疾证 医保卡"
).split()


def _load_synonyms(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    mapping: dict[str, str] = {}
    for canonical, variants in data.items():
        mapping[str(canonical).lower()] = str(canonical).lower()
        for v in variants or []:
            mapping[str(v).lower()] = str(canonical).lower()
    return mapping


def _is_symbol(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # So/Sk: emoji, dingbats, modifiers; Cs/Co/Cn: surrogates, private use, unassigned;
    # Cf: zero-width joiners; variation selectors and the keycap mark that dress emoji.
    cp = ord(ch)
    return (
        cat in {"So", "Sk", "Cs", "Co", "Cn", "Cf"}
        or 0xFE00 <= cp <= 0xFE0F
        or cp == 0x20E3
        or 0xE0100 <= cp <= 0xE01EF
    )


class TextPipeline:
    """Stateless after construction; jieba and the pinyin table load lazily, once."""

    def __init__(self, userdict: Path = USERDICT, synonyms: Path = SYNONYMS) -> None:
        self._userdict = userdict
        self._synonyms = _load_synonyms(synonyms)
        alternatives = sorted(self._synonyms, key=len, reverse=True)
        # English variants match whole words only ("tax" must not match inside "taxi").
        self._synonym_re = re.compile(
            "|".join(
                rf"(?<![a-z]){re.escape(a)}(?![a-z])" if re.search("[a-z]", a) else re.escape(a)
                for a in alternatives
            )
        )
        self._lock = threading.Lock()
        self._extra_words: set[str] = set()

    # -- normalisation -------------------------------------------------------------------
    @cached_property
    def _t2s(self) -> Any:
        from opencc import OpenCC

        return OpenCC("t2s")

    @cached_property
    def _traditional_chars(self) -> frozenset[str]:
        import opencc

        table = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
        return frozenset(
            line.split("\t", 1)[0]
            for line in table.read_text(encoding="utf-8").splitlines()
            if line
        )

    def normalize(self, text: str, question: bool = False) -> str:
        """The common form of a text. ``question=True`` also corrects homophone typos, which
        curated documents do not need (and which would slow indexing down)."""
        text = unicodedata.normalize("NFKC", text)
        text = "".join(" " if _is_symbol(ch) else ch for ch in text)
        # Converting is slow-ish; most text is already simplified, so look before converting.
        if not self._traditional_chars.isdisjoint(text):
            text = self._t2s.convert(text)
        text = text.lower()
        if re.search(r"[a-z]{4,}", text):
            text = self._decode_pinyin(text)
        text = self._synonym_re.sub(lambda m: self._synonyms[m.group(0)], text)
        if question:
            text = self._correct_homophones(text)
        return re.sub(r"\s+", " ", text).strip()

    # -- pinyin --------------------------------------------------------------------------
    @cached_property
    def _pinyin_table(self) -> dict[str, str]:
        from pypinyin import lazy_pinyin

        words = list(_PINYIN_WORDS)
        words += [w for w in self.domain_words() if 2 <= len(w) <= 6]
        words += [c for c in set(self._synonyms.values()) if 2 <= len(c) <= 6]
        table: dict[str, str] = {}
        for w in words:
            if not re.fullmatch(r"[\u4e00-\u9fff]+", w):
                continue
            key = "".join(lazy_pinyin(w))
            # Domain words come later in the list and win over generic ones.
            table[key] = w
        return table

    def _decode_pinyin(self, text: str) -> str:
        table = self._pinyin_table
        longest = max((len(k) for k in table), default=0)

        def decode_run(match: re.Match[str]) -> str:
            run = match.group(0)
            parts = run.split(" ")
            # Greedy longest match over the run with the spaces removed; where nothing
            # matches, skip to the next space-separated part rather than mid-syllable.
            joined = "".join(parts)
            starts = {0}
            pos = 0
            for p in parts:
                pos += len(p)
                starts.add(pos)
            out: list[str] = []
            i = 0
            matched_any = False
            while i < len(joined):
                for j in range(min(len(joined), i + longest), i + 3, -1):
                    word = table.get(joined[i:j])
                    if word:
                        out.append(word)
                        i = j
                        matched_any = True
                        break
                else:
                    nxt = min((s for s in starts if s > i), default=len(joined))
                    out.append(joined[i:nxt])
                    i = nxt
            return " ".join(out) if matched_any else run

        return re.sub(r"[a-z]+(?: [a-z]+)*", decode_run, text)

    # -- homophone typos ----------------------------------------------------------------
    @cached_property
    def _homophones(self) -> dict[str, str]:
        """Toneless pinyin -> domain word, for the typos a pinyin keyboard makes (法票 for
        发票, 投速 for 投诉)."""
        from pypinyin import lazy_pinyin

        table: dict[str, str] = {}
        for w in self.domain_words():
            if 2 <= len(w) <= 5 and re.fullmatch(r"[\u4e00-\u9fff]+", w):
                table.setdefault("".join(lazy_pinyin(w)), w)
        return table

    def _correct_homophones(self, text: str) -> str:
        """Replace a run of 2-5 characters that is not a word (not in jieba's dictionary nor
        the domain's) but sounds exactly like a domain word. Real words are never touched, so
        剩余 is not turned into 生育."""
        from pypinyin import lazy_pinyin

        table = self._homophones
        domain = set(table.values())
        freq = self._jieba.FREQ
        out: list[str] = []
        for run in re.split(r"([\u4e00-\u9fff]+)", text):
            if not run or not re.fullmatch(r"[\u4e00-\u9fff]+", run) or len(run) < 2:
                out.append(run)
                continue
            syllables = lazy_pinyin(list(run))
            i, pieces = 0, []
            while i < len(run):
                for j in range(min(len(run), i + 5), i + 1, -1):
                    window = run[i:j]
                    target = table.get("".join(syllables[i:j]))
                    if target and window not in domain and not freq.get(window):
                        pieces.append(target)
                        i = j
                        break
                else:
                    pieces.append(run[i])
                    i += 1
            out.append("".join(pieces))
        return "".join(out)

    # -- tokenisation --------------------------------------------------------------------
    @cached_property
    def _jieba(self) -> Any:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        tk = jieba.Tokenizer()
        tk.initialize()
        with open(self._userdict, "rb") as f:  # jieba leaves a path's file open
            tk.load_userdict(f)
        for w in set(self._synonyms.values()):
            tk.add_word(w, freq=50)
        return tk

    def add_words(self, words: Iterable[str]) -> None:
        """Teach the tokenizer service names and aliases found in the documents."""
        with self._lock:
            added = False
            for w in words:
                w = self.normalize(w)
                if 2 <= len(w) <= 12 and w not in self._extra_words:
                    self._extra_words.add(w)
                    self._jieba.add_word(w, freq=40)
                    added = True
            if added:  # the pinyin tables are derived from the domain words
                self.__dict__.pop("_pinyin_table", None)
                self.__dict__.pop("_homophones", None)

    def domain_words(self) -> list[str]:
        words = [
            line.split()[0]
            for line in self._userdict.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        return words + sorted(self._extra_words)

    def words(self, normalized: str) -> list[str]:
        """Whole words (jieba precise mode), no stopwords: a question's key terms as the
        resident wrote them, e.g. 出口退税 rather than its parts 出口 and 退税."""
        return [
            t
            for t in (w.strip() for w in self._jieba.cut(normalized))
            if t and t not in STOPWORDS and any(ch.isalnum() for ch in t)
        ]

    def is_generic(self, normalized: str) -> bool:
        """True when the question names nothing specific (see GENERIC_WORDS)."""
        return all(w in GENERIC_WORDS for w in self.words(normalized))

    def tokens(self, normalized: str) -> list[str]:
        """BM25 terms of an already normalised text: jieba search-mode cut, no stopwords."""
        out = []
        for t in self._jieba.cut_for_search(normalized):
            t = t.strip()
            if not t or t in STOPWORDS or not any(ch.isalnum() for ch in t):
                continue
            out.append(t)
        return out

"""Asking the knowledge base within a conversation: a follow-up that names no service
("那要带什么材料？") is asked about the service talked about before."""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from knowledge_base.answer import Answer
from knowledge_base.service import KnowledgeBase
from knowledge_base.text import GENERIC_WORDS, USERDICT

# What a follow-up asks about a service already named. A message with none of these
# ("就是那个东西") adds nothing to the earlier item: asking back beats guessing.
FACETS = (
    "材料", "证件", "带什么", "带啥", "带些", "多久", "几天", "多长时间", "时间", "时限",
    "窗口", "哪里", "在哪", "哪儿", "地址", "收费", "费用", "多少钱", "要钱", "免费",
    "条件", "要求", "资格", "网上", "线上", "手机", "小程序", "本人", "代办", "委托",
    "流程", "步骤", "怎么办", "咋办", "怎么弄", "咋弄", "怎么申请", "电话", "预约",
    "进度", "邮寄", "补办", "办理", "复印", "原件", "照片", "表格", "填",
)  # fmt: skip


@dataclass
class Turn:
    answer: Answer
    item_id: str | None  # the item the conversation is about after this turn
    contextual: bool  # answered with the earlier item as context


def answer_in_context(
    kb: KnowledgeBase, question: str, context_item: str | None, named_item: str | None = None
) -> Turn:
    """``named_item``: an item the resident named in this message (an NLU entity or a button);
    ``context_item``: the item of the conversation so far."""
    item = named_item or None
    if item and item in kb.catalog.items:
        # A button press or an explicit name: ask about that item, with the question asked.
        # With no question (a bare button press) ask how the item is done: the overview.
        asked = kb.ask(f"{kb.catalog.items[item].name} {question or '怎么办理'}")
        return Turn(asked, asked.item_id or item, contextual=True)
    plain = kb.ask(question)
    follow_up = any(f in question for f in FACETS)
    if (
        not context_item
        or context_item not in kb.catalog.items
        or not follow_up
        or _names_an_item(kb, question, besides=context_item)
    ):
        return Turn(plain, plain.item_id or context_item, contextual=False)
    scoped = kb.ask(f"{kb.catalog.items[context_item].name} {question}")
    # The follow-up reading wins unless it found nothing: residents rarely switch topic
    # without naming the new one, and a named item was handled above.
    if scoped.answered or not plain.answered:
        return Turn(scoped, scoped.item_id or context_item, contextual=True)
    return Turn(plain, plain.item_id, contextual=False)


def _names_an_item(kb: KnowledgeBase, question: str, besides: str) -> bool:
    """Does the question name a service other than ``besides`` (by a catalogue title or a
    guide alias, also the short form before a bracket: 社保卡, 营业执照, 离婚)?"""
    text = kb.text.normalize(question, question=True)
    # A name among the earlier item's own materials (居住证 needs the 身份证) is not a new
    # topic: "要带身份证吗" still asks about 居住证.
    guide = kb.docs.get(f"guide:{besides}")
    own = " ".join(m.get("name", "") for m in guide.data.get("materials", [])) if guide else ""
    return any(
        name in text and name not in own
        for item_id, names in item_names(kb).items()
        if item_id != besides
        for name in names
    )


# per knowledge base, rebuilt when its revision changes (an admin edited a guide)
_NAMES: weakref.WeakKeyDictionary[KnowledgeBase, tuple[int, dict[str, list[str]]]] = (
    weakref.WeakKeyDictionary()
)


def item_names(kb: KnowledgeBase) -> dict[str, list[str]]:
    """Item id -> names residents use: title and aliases, without whole questions."""
    cached = _NAMES.get(kb)
    if cached and cached[0] == kb.revision:
        return cached[1]
    names: dict[str, list[str]] = {}
    for doc in kb.docs.values():
        if doc.kind == "guide" and doc.item_id:
            found = {kb.text.normalize(n) for n in [doc.title, *doc.data.get("aliases", [])]}
            found |= {n.split("（")[0].split("(")[0] for n in found}
            names[doc.item_id] = sorted(
                n for n in found if len(n) >= 2 and not kb.text.is_generic(n) and not _asks(n)
            )
    # Residents say the core word of a name ("社保卡" of "办社保卡"): add the domain
    # dictionary's words found in the names of only a few items (not 身份证, which is in many).
    domain = {
        line.split()[0]
        for line in USERDICT.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    owners: dict[str, set[str]] = {}
    for item_id, ns in names.items():
        for n in ns:
            for w in kb.text.tokens(n):
                if w in domain and w not in GENERIC_WORDS:
                    owners.setdefault(w, set()).add(item_id)
    for word, items in owners.items():
        if len(items) <= 3:
            for item_id in items:
                if word not in names[item_id]:
                    names[item_id].append(word)
    _NAMES[kb] = (kb.revision, names)
    return names


def _asks(name: str) -> bool:
    return any(q in name for q in ("怎么", "如何", "吗", "什么", "哪", "多久", "多少", "啥"))


def resolve_item(kb: KnowledgeBase, value: str | None) -> str | None:
    """An item id for what NLU tagged as a service ("社保卡"): the id itself when the
    synonym mapping found it, otherwise the item the knowledge base answers the name with."""
    if not value:
        return None
    if value in kb.catalog.items:
        return value
    found = kb.ask(value)
    return found.item_id if found.answered else None

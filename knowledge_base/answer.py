"""Answers composed from retrieved chunks: the item, a short answer, key facts, the sources
and follow-up suggestions; or an honest "not found" with the nearest items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from knowledge_base.index import IndexedChunk
from knowledge_base.source import Catalog, Document

MAX_ANSWER_CHARS = 400
SUGGESTIONS = 3


@dataclass
class Answer:
    question: str
    answered: bool
    item_id: str | None
    confidence: float
    answer: str
    sources: list[dict[str, str]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)  # 您可能还想问
    item: dict[str, Any] | None = None  # key facts of the answered item
    notice: str = ""  # e.g. the question was cut

    def contract(self) -> dict[str, Any]:
        """Exactly the fields of the `banshi kb ask --jsonl` contract."""
        return {
            "question": self.question,
            "answered": self.answered,
            "item_id": self.item_id,
            "confidence": round(self.confidence, 4),
            "answer": self.answer,
            "sources": self.sources,
            "candidates": self.candidates,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.contract(),
            "suggestions": self.suggestions,
            "item": self.item,
            "notice": self.notice,
        }


def source_of(chunk: IndexedChunk, doc: Document) -> dict[str, str]:
    return {"id": doc.id, "kind": doc.kind, "title": doc.title, "section": chunk.section}


def item_facts(item_id: str, docs: dict[str, Document], catalog: Catalog) -> dict[str, Any]:
    item = catalog.items[item_id]
    dept = catalog.departments.get(item.department)
    guide = docs.get(f"guide:{item_id}")
    facts: dict[str, Any] = {
        "id": item_id,
        "title": item.name,
        "department": dept.name if dept else "",
    }
    if guide:
        g = guide.data
        facts.update(
            {
                "window": g["window"],
                "phone": g["phone"],
                "time_limit": g["time_limit"],
                "fee": g["fee"],
                "online": g.get("online", ""),
                "materials": [f"{m['name']}（{m['form']}{m['count']}份）" for m in g["materials"]],
            }
        )
    return facts


def _clip(text: str, limit: int = MAX_ANSWER_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def compose_answer(
    question: str,
    item_id: str,
    confidence: float,
    chunk: IndexedChunk,
    docs: dict[str, Document],
    catalog: Catalog,
    suggestions: list[str],
) -> Answer:
    facts = item_facts(item_id, docs, catalog)
    doc = docs[chunk.doc_id]
    if chunk.kind == "faq":
        body = chunk.display
    elif chunk.kind == "policy":
        body = f"根据《{doc.title.strip('《》')}》：{chunk.display}"
    elif chunk.section == "事项":
        body = f"{facts['title']}由{facts['department']}办理。" + _summary(facts)
    else:
        body = f"【{facts['title']} · {chunk.section}】{chunk.display}"
    if chunk.section not in {"办理时限与收费", "事项"} and "window" in facts:
        body = _clip(body) + f"\n办理窗口：{facts['window']}；咨询电话：{facts['phone']}。"
    return Answer(
        question=question,
        answered=True,
        item_id=item_id,
        confidence=confidence,
        answer=_clip(body, MAX_ANSWER_CHARS + 80),
        sources=[source_of(chunk, doc)],
        suggestions=suggestions,
        item=facts,
    )


def _summary(facts: dict[str, Any]) -> str:
    if "window" not in facts:
        return ""
    return (
        f"办理时限：{facts['time_limit']}；收费：{facts['fee']}；"
        f"窗口：{facts['window']}；电话：{facts['phone']}。"
    )


def not_found(
    question: str, confidence: float, nearest: list[str], catalog: Catalog, hotline: str
) -> Answer:
    names = [catalog.items[i].name for i in nearest if i in catalog.items]
    text = "抱歉，知识库里没有找到能准确回答这个问题的内容。"
    if names:
        text += "您是不是想问：" + "、".join(f"“{n}”" for n in names) + "？"
    text += f"您也可以转人工客服，或拨打{hotline}热线咨询。"
    return Answer(
        question=question,
        answered=False,
        item_id=None,
        confidence=confidence,
        answer=text,
        suggestions=[f"{n}怎么办理？" for n in names],
    )

"""Documents become retrieval chunks.

Each chunk has a ``display`` text (what an answer may quote), a ``lexical`` text for BM25 and
a short ``dense`` text for the encoder: questions and headings embed well, whole pages do not,
and the encoder's cost grows with length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from knowledge_base.source import Catalog, Document

# Bump when chunking or text normalisation changes: a saved index built by another version
# is rebuilt at start, since syncing re-chunks only documents whose content changed.
CHUNKER_VERSION = 2
MAX_CHUNK_CHARS = 360
# A new article starts at a line beginning 第X条, maybe bold or a heading (**第一条**, ## 第一条).
_ARTICLE = re.compile(r"\n(?=[ \t]*(?:\*\*|#+[ \t]*)?第[一二三四五六七八九十百零〇\d]+条)")
DENSE_CHARS = 96


@dataclass
class Chunk:
    doc_id: str
    item_id: str
    kind: str  # guide | faq | policy
    section: str
    display: str
    lexical: str
    dense: str


def _split_long(text: str, limit: int = MAX_CHUNK_CHARS) -> list[str]:
    """Split at paragraph, then sentence boundaries, into pieces of at most ``limit``."""
    pieces: list[str] = []
    current = ""
    for sentence in re.split(r"(?<=[。；！？\n])", text):
        if not sentence.strip():
            continue
        if current and len(current) + len(sentence) > limit:
            pieces.append(current.strip())
            current = ""
        current += sentence
    if current.strip():
        pieces.append(current.strip())
    return pieces


def chunk_document(doc: Document, catalog: Catalog) -> list[Chunk]:
    d = doc.data
    if doc.kind == "faq":
        item = d["item"]
        return [
            Chunk(doc.id, item, "faq", "常见问题", d["answer"], f"{q} {d['answer']}", q)
            for q in [d["question"], *d.get("variants", [])]
        ]
    if doc.kind == "policy":
        out = []
        for part in _ARTICLE.split(d["body"]):
            if not part.strip():
                continue
            for piece in _split_long(part.strip()):
                out.append(
                    Chunk(
                        doc.id,
                        d["items"][0],
                        "policy",
                        d["title"],
                        piece,
                        f"{d['title']} {piece}",
                        f"{d['title']}：{piece}"[:DENSE_CHARS],
                    )
                )
        return out
    # guide
    item = doc.item_id or ""
    title = d["title"]
    dept = catalog.departments.get(d["department"])
    aliases = "、".join(d.get("aliases", []))
    out = [
        Chunk(
            doc.id,
            item,
            "guide",
            "事项",
            f"{title}（{dept.name if dept else ''}）",
            f"{title} {aliases} {d['audience']}",
            f"{title}；{aliases}"[:DENSE_CHARS],
        ),
    ]
    materials = "；".join(
        f"{m['name']}（{m['form']}{m['count']}份{'，' + m['note'] if m['note'] else ''}）"
        for m in d["materials"]
    )
    out.append(
        Chunk(
            doc.id,
            item,
            "guide",
            "申请材料",
            materials,
            f"{title} 申请材料 需要带什么 {materials}",
            f"{title}需要什么材料",
        )
    )
    facts = (
        f"办理时限：{d['time_limit']}。收费标准：{d['fee']}。办理窗口：{d['window']}。"
        f"咨询电话：{d['phone']}。" + (f"网上办理：{d['online']}。" if d.get("online") else "")
    )
    out.append(
        Chunk(
            doc.id,
            item,
            "guide",
            "办理时限与收费",
            facts,
            f"{title} 多久 收费 窗口 地点 电话 {facts}",
            f"{title}要多久、收费吗、在哪办",
        )
    )
    basis = "；".join(d["legal_basis"])
    out.append(
        Chunk(
            doc.id,
            item,
            "guide",
            "政策依据",
            basis,
            f"{title} 政策依据 {basis}",
            f"{title}的政策依据",
        )
    )
    for s in d["sections"]:
        for piece in _split_long(s["text"]):
            out.append(
                Chunk(
                    doc.id,
                    item,
                    "guide",
                    s["heading"],
                    piece,
                    f"{title} {s['heading']} {piece}",
                    f"{title}{s['heading']}：{piece}"[:DENSE_CHARS],
                )
            )
    return out

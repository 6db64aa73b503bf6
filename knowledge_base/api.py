"""HTTP routes of the knowledge base: ask, browse, and (admin) manage documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from banshi.deps import AdminDep
from knowledge_base.service import KnowledgeBase
from knowledge_base.source import Document

router = APIRouter(prefix="/api/kb", tags=["knowledge base"])


def get_kb(request: Request) -> KnowledgeBase:
    kb: KnowledgeBase = request.app.state.kb
    return kb


KbDep = Annotated[KnowledgeBase, Depends(get_kb)]


class AskIn(BaseModel):
    # Long questions are accepted and cut by the knowledge base with a notice.
    question: str = Field(max_length=20_000)


class DocumentIn(BaseModel):
    kind: Literal["guide", "faq", "policy"]
    source: str = Field(
        min_length=1,
        max_length=200_000,
        description="The document in its file format: Markdown with YAML front matter for a "
        "guide or policy; a YAML (or JSON) mapping with item/question/answer for an FAQ.",
    )


def _document_out(doc: Document) -> dict[str, Any]:
    return {
        "id": doc.id,
        "kind": doc.kind,
        "item_id": doc.item_id,
        "title": doc.title,
        "items": doc.items,
        "data": doc.data,
    }


@router.post("/ask")
def ask(body: AskIn, kb: KbDep) -> dict[str, Any]:
    return kb.ask(body.question).to_dict()


@router.get("/items")
def items(kb: KbDep) -> list[dict[str, str]]:
    return [
        {"id": i.id, "name": i.name, "department": kb.catalog.departments[i.department].name}
        for i in kb.catalog.items.values()
    ]


@router.get("/documents")
def list_documents(
    kb: KbDep,
    kind: Literal["guide", "faq", "policy"] | None = None,
    item: Annotated[str | None, Query(max_length=64)] = None,
) -> list[dict[str, Any]]:
    kb.refresh_if_stale()
    docs = [
        d
        for d in kb.docs.values()
        if (kind is None or d.kind == kind) and (item is None or item in d.items)
    ]
    return [
        {"id": d.id, "kind": d.kind, "item_id": d.item_id, "title": d.title}
        for d in sorted(docs, key=lambda d: d.id)
    ]


@router.get("/documents/{doc_id}")
def get_document(doc_id: str, kb: KbDep) -> dict[str, Any]:
    return _document_out(kb.get_document(doc_id))


@router.post("/documents", status_code=201)
def create_document(body: DocumentIn, kb: KbDep, admin: AdminDep) -> dict[str, Any]:
    return _document_out(kb.create_document(body.kind, body.source, admin.username))


@router.put("/documents/{doc_id}")
def replace_document(doc_id: str, body: DocumentIn, kb: KbDep, admin: AdminDep) -> dict[str, Any]:
    kb.get_document(doc_id)  # 404 when it does not exist
    return _document_out(
        kb.save_document(body.kind, body.source, admin.username, expected_id=doc_id)
    )


@router.delete("/documents/{doc_id}", status_code=204)
def delete_document(doc_id: str, kb: KbDep, admin: AdminDep) -> None:
    kb.delete_document(doc_id, admin.username)

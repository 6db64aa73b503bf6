"""Errors of the knowledge base part."""

from __future__ import annotations

from banshi.errors import BanshiError


class KnowledgeBaseError(BanshiError):
    code = "kb_error"


class DocumentInvalid(KnowledgeBaseError):
    """A source document failed validation; names the file and the field."""

    status_code = 422
    code = "kb_document_invalid"

    def __init__(self, source: str, field: str, problem: str) -> None:
        super().__init__(
            f"文档 {source} 的字段“{field}”有误：{problem}",
            f"{source}: field {field!r}: {problem}",
            source=source,
            field=field,
            problem=problem,
        )
        self.source = source
        self.field = field
        self.problem = problem


class KnowledgeBaseNotReady(KnowledgeBaseError):
    status_code = 503
    code = "kb_not_ready"

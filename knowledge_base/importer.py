"""Import an FAQ spreadsheet (xlsx, csv or jsonl) that a centre already keeps.

Columns are found by name, in Chinese or English: question (问题), answer (答案/答复), department
(部门), and optionally item (事项, an item id or name). A row without an item is placed by
asking the knowledge base which of its department's items the question is about; rows that
cannot be placed confidently are skipped and reported, never guessed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from knowledge_base.errors import DocumentInvalid
from knowledge_base.retrieval import retrieve
from knowledge_base.service import KnowledgeBase
from knowledge_base.source import Document, parse_faq_entry

COLUMNS = {
    "question": ("question", "q", "问题", "问", "提问", "咨询问题", "常见问题"),
    "answer": ("answer", "a", "答案", "回答", "答复", "解答", "答复内容"),
    "department": ("department", "dept", "部门", "单位", "责任部门", "所属部门"),
    "item": ("item", "item_id", "事项", "事项名称", "事项编号"),
}
MIN_PLACEMENT_SCORE = 0.35


@dataclass
class ImportReport:
    rows: int = 0
    documents: list[Document] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line or row number as a person sees it in the file, row) pairs."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DocumentInvalid(path.name, f"第{n}行", f"不是合法的 JSON：{exc.msg}") from exc
            if not isinstance(data, dict):
                raise DocumentInvalid(path.name, f"第{n}行", "每行应为一个 JSON 对象")
            rows.append((n, {str(k): "" if v is None else str(v) for k, v in data.items()}))
        return rows
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            return [(reader.line_num, {k or "": v or "" for k, v in row.items()}) for row in reader]
    if suffix in {".xlsx", ".xlsm"}:
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        rows = list(wb.worksheets[0].iter_rows(values_only=True))
        wb.close()
        if not rows:
            return []
        header = [str(h or "").strip() for h in rows[0]]
        return [
            (
                n,
                {
                    header[i]: "" if v is None else str(v)
                    for i, v in enumerate(r)
                    if i < len(header)
                },
            )
            for n, r in enumerate(rows[1:], start=2)
        ]
    raise DocumentInvalid(path.name, "(file)", "只支持 xlsx、csv、jsonl 格式")


def _column(row: dict[str, str], name: str) -> str:
    for key, value in row.items():
        if key.strip().lower() in COLUMNS[name]:
            return value.strip()
    return ""


def _department(kb: KnowledgeBase, text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    for d in kb.catalog.departments.values():
        if text in {d.code, d.name} or text in d.name or d.name in text:
            return d.code
    for d in kb.catalog.departments.values():  # 人社局 vs 人力资源和社会保障局: shared characters
        core = text.removesuffix("局").removesuffix("中心")
        if len(core) >= 2 and all(ch in d.name for ch in core):
            return d.code
    return None


def _item(
    kb: KnowledgeBase, row: dict[str, str], question: str, answer: str, department: str | None
) -> tuple[str | None, str]:
    named = _column(row, "item")
    if named:
        for item in kb.catalog.items.values():
            if named in {item.id, item.name}:
                return item.id, ""
        return None, f"事项“{named}”不在事项目录中"
    assert kb.index is not None and kb.calibration is not None
    found = retrieve(
        kb.index,
        kb.text.normalize(f"{question} {answer}", question=True),
        kb.calibration.fusion,
        kb.aliases,
    )
    for hit in found.items:
        dep = kb.catalog.items[hit.item_id].department
        if department is None or dep == department:
            if hit.score >= MIN_PLACEMENT_SCORE:
                return hit.item_id, ""
            break
    return None, "无法确定对应的事项，请在“事项”列填写"


def import_faq_file(
    kb: KnowledgeBase, path: Path, dry_run: bool = False, out: Path | None = None
) -> ImportReport:
    report = ImportReport()
    entries: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}  # document id -> row it was first seen on
    for n, row in read_rows(path):
        report.rows += 1
        where = f"{path.name} 第{n}行"
        question, answer = _column(row, "question"), _column(row, "answer")
        if not question or not answer:
            report.skipped.append(f"{where}：问题或答案为空")
            continue
        dept_text = _column(row, "department")
        department = _department(kb, dept_text)
        if dept_text and department is None:
            report.skipped.append(f"{where}：部门“{dept_text}”不在中心部门列表中")
            continue
        item_id, problem = _item(kb, row, question, answer, department)
        if item_id is None:
            report.skipped.append(f"{where}：{problem}")
            continue
        entry = {"item": item_id, "question": question, "answer": answer}
        try:
            doc = parse_faq_entry(entry, where, kb.catalog)
        except DocumentInvalid as exc:
            report.skipped.append(exc.message)
            continue
        if doc.id in first_row:
            report.skipped.append(f"{where}：与第{first_row[doc.id]}行是同一个问题")
            continue
        first_row[doc.id] = n
        entries.append(entry)
        report.documents.append(doc)
    if out is not None:
        out.write_text(
            yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
    if not dry_run and report.documents:
        kb.store(report.documents, user=f"import:{path.name}")
        kb.refresh_now()
    return report

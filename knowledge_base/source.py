"""The human-editable source format (see sample/README.md): parsing and validation.

Guides and policies are Markdown with YAML front matter; FAQs are YAML lists. Every problem
is reported as :class:`DocumentInvalid` naming the file and the field, and loading a folder
collects all problems instead of stopping at the first.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from knowledge_base.errors import DocumentInvalid

Kind = Literal["guide", "faq", "policy"]
MATERIAL_FORMS = ("原件", "复印件", "原件及复印件", "电子版")
GUIDE_REQUIRED = ("id", "title", "department", "audience", "time_limit", "fee", "window", "phone")
GUIDE_SECTIONS = ("办理条件", "办理流程")
POLICY_REQUIRED = ("id", "title", "issuer", "doc_no", "effective", "items")
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\n(.*?)\n---[ \t]*\n?(.*)\Z", re.DOTALL)


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    department: str


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    zone: str
    windows: str
    phone: str
    prefix: str


@dataclass
class Catalog:
    """The centre, its departments and its service items (centre.yml + catalog.yml)."""

    centre: dict[str, Any]
    departments: dict[str, Department]
    items: dict[str, Item]

    @classmethod
    def load(cls, folder: Path) -> Catalog:
        centre = _read_yaml(folder / "centre.yml")
        if not isinstance(centre, dict):
            raise DocumentInvalid("centre.yml", "(file)", "应为键值对（mapping）")
        departments: dict[str, Department] = {}
        for i, d in enumerate(centre.get("departments") or []):
            try:
                dep = Department(**{k: str(d[k]) for k in Department.__dataclass_fields__})
            except (KeyError, TypeError) as exc:
                raise DocumentInvalid("centre.yml", f"departments[{i}]", f"缺少字段 {exc}") from exc
            departments[dep.code] = dep
        items: dict[str, Item] = {}
        rows = _read_yaml(folder / "catalog.yml")
        if not isinstance(rows, list):
            raise DocumentInvalid("catalog.yml", "(file)", "应为事项列表")
        for i, row in enumerate(rows):
            if not isinstance(row, dict) or not {"id", "name", "department"} <= row.keys():
                raise DocumentInvalid("catalog.yml", f"[{i}]", "每项需要 id、name、department")
            if row["department"] not in departments:
                raise DocumentInvalid(
                    "catalog.yml",
                    f"[{i}].department",
                    f"部门 {row['department']!r} 不在 centre.yml 中",
                )
            items[row["id"]] = Item(str(row["id"]), str(row["name"]), str(row["department"]))
        return cls(centre=centre, departments=departments, items=items)

    def department_of(self, item_id: str) -> Department | None:
        item = self.items.get(item_id)
        return self.departments.get(item.department) if item else None


@dataclass
class Document:
    id: str
    kind: Kind
    item_id: str | None
    title: str
    data: dict[str, Any]
    source: str = ""
    items: list[str] = field(default_factory=list)

    @property
    def content_hash(self) -> str:
        raw = json.dumps(
            [self.kind, self.item_id, self.title, self.data],
            ensure_ascii=False,
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def faq_id(item_id: str, question: str) -> str:
    digest = hashlib.sha1(re.sub(r"\s+", "", question).encode()).hexdigest()[:10]
    return f"faq:{item_id}:{digest}"


def _read_text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentInvalid(
            name, "(file)", "文件不是 UTF-8 编码，请用 UTF-8 另存后再导入"
        ) from exc
    except OSError as exc:
        raise DocumentInvalid(name, "(file)", f"无法读取：{exc.strerror}") from exc


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        raise DocumentInvalid(path.name, "(file)", "文件不存在")
    return _parse_yaml(_read_text(path, path.name), path.name)


def _parse_yaml(text: str, source: str, first_line: int = 1) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第{mark.line + first_line}行" if mark else "(file)"
        raise DocumentInvalid(
            source, where, f"YAML 格式错误：{getattr(exc, 'problem', exc)}"
        ) from exc


def _split_front_matter(text: str, source: str) -> tuple[dict[str, Any], str]:
    m = _FRONT_MATTER.match(text)
    if not m:
        raise DocumentInvalid(source, "(front matter)", "文件开头需要用 --- 包起来的 YAML 头")
    meta = _parse_yaml(m.group(1), source, first_line=2)  # line 1 is the opening ---
    if not isinstance(meta, dict):
        raise DocumentInvalid(source, "(front matter)", "YAML 头应为键值对")
    return meta, m.group(2)


def _sections(body: str) -> list[dict[str, str]]:
    sections: list[dict[str, str]] = []
    heading, lines = "概述", list[str]()
    for line in body.splitlines():
        if line.startswith("## "):
            if "".join(lines).strip():
                sections.append({"heading": heading, "text": "\n".join(lines).strip()})
            heading, lines = line[3:].strip(), []
        else:
            lines.append(line)
    if "".join(lines).strip():
        sections.append({"heading": heading, "text": "\n".join(lines).strip()})
    return sections


def _require_text(meta: dict[str, Any], key: str, source: str) -> str:
    value = meta.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DocumentInvalid(source, key, "必填，不能为空")
    if isinstance(value, list | dict):
        raise DocumentInvalid(source, key, "应为一段文字")
    return str(value).strip()


def _str_list(meta: dict[str, Any], key: str, source: str, required: bool = False) -> list[str]:
    value = meta.get(key)
    if value is None:
        if required:
            raise DocumentInvalid(source, key, "必填，应为列表")
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise DocumentInvalid(source, key, "应为文字列表")
    out = [str(v).strip() for v in value if str(v).strip()]
    if required and not out:
        raise DocumentInvalid(source, key, "至少需要一项")
    return out


def parse_guide(text: str, source: str, catalog: Catalog) -> Document:
    meta, body = _split_front_matter(text, source)
    values = {k: _require_text(meta, k, source) for k in GUIDE_REQUIRED}
    item = catalog.items.get(values["id"])
    if item is None:
        raise DocumentInvalid(source, "id", f"事项 {values['id']!r} 不在事项目录 catalog.yml 中")
    stem = Path(source).stem
    if source.endswith(".md") and stem != values["id"]:
        raise DocumentInvalid(source, "id", f"文件名应为 {values['id']}.md")
    if values["title"] != item.name:
        raise DocumentInvalid(source, "title", f"应与事项目录一致：{item.name}")
    if values["department"] not in catalog.departments:
        raise DocumentInvalid(
            source, "department", f"部门 {values['department']!r} 不在 centre.yml 中"
        )
    materials = meta.get("materials")
    if not isinstance(materials, list) or not materials:
        raise DocumentInvalid(source, "materials", "必填，应为材料列表")
    clean_materials = []
    for i, m in enumerate(materials):
        where = f"materials[{i + 1}]"
        if not isinstance(m, dict) or not str(m.get("name", "")).strip():
            raise DocumentInvalid(source, f"{where}.name", "每项材料需要名称")
        if m.get("form") not in MATERIAL_FORMS:
            raise DocumentInvalid(
                source, f"{where}.form", f"应为 {' / '.join(MATERIAL_FORMS)} 之一"
            )
        count = m.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise DocumentInvalid(source, f"{where}.count", "份数应为正整数")
        clean_materials.append(
            {
                "name": str(m["name"]).strip(),
                "form": m["form"],
                "count": count,
                "note": str(m.get("note") or "").strip(),
            }
        )
    sections = _sections(body)
    headings = {s["heading"] for s in sections}
    for required in GUIDE_SECTIONS:
        if required not in headings:
            raise DocumentInvalid(source, f"## {required}", "正文缺少这一节")
    data = {
        **values,
        "aliases": _str_list(meta, "aliases", source),
        "online": str(meta.get("online") or "").strip(),
        "legal_basis": _str_list(meta, "legal_basis", source, required=True),
        "materials": clean_materials,
        "sections": sections,
    }
    return Document(
        id=f"guide:{item.id}",
        kind="guide",
        item_id=item.id,
        title=item.name,
        data=data,
        source=source,
        items=[item.id],
    )


def parse_policy(text: str, source: str, catalog: Catalog) -> Document:
    meta, body = _split_front_matter(text, source)
    values = {k: _require_text(meta, k, source) for k in POLICY_REQUIRED if k != "items"}
    items = _str_list(meta, "items", source, required=True)
    for it in items:
        if it not in catalog.items:
            raise DocumentInvalid(source, "items", f"事项 {it!r} 不在事项目录中")
    if len(body.strip()) < 50:
        raise DocumentInvalid(source, "(body)", "正文太短或为空")
    data = {**values, "items": items, "body": body.strip()}
    return Document(
        id=f"policy:{values['id']}",
        kind="policy",
        item_id=items[0],
        title=values["title"],
        data=data,
        source=source,
        items=items,
    )


def parse_faq_entry(entry: Any, source: str, catalog: Catalog) -> Document:
    if not isinstance(entry, dict):
        raise DocumentInvalid(source, "(entry)", "每条问答应为键值对：item、question、answer")
    item_id = str(entry.get("item") or "").strip()
    if item_id not in catalog.items:
        raise DocumentInvalid(source, "item", f"事项 {item_id!r} 不在事项目录中")
    question = _require_text(entry, "question", source)
    answer = _require_text(entry, "answer", source)
    variants = _str_list(entry, "variants", source)
    data = {"item": item_id, "question": question, "variants": variants, "answer": answer}
    return Document(
        id=faq_id(item_id, question),
        kind="faq",
        item_id=item_id,
        title=question,
        data=data,
        source=source,
        items=[item_id],
    )


def parse_faq_file(text: str, source: str, catalog: Catalog) -> list[Document]:
    rows = _parse_yaml(text, source)
    if not isinstance(rows, list):
        raise DocumentInvalid(source, "(file)", "应为问答列表")
    return [parse_faq_entry(row, f"{source}#{i + 1}", catalog) for i, row in enumerate(rows)]


def parse_source(kind: str, text: str, source: str, catalog: Catalog) -> Document:
    """One document from its source text, as submitted through the admin API."""
    if kind == "guide":
        return parse_guide(text, source, catalog)
    if kind == "policy":
        return parse_policy(text, source, catalog)
    if kind == "faq":
        return parse_faq_entry(_parse_yaml(text, source), source, catalog)
    raise DocumentInvalid(source, "kind", "应为 guide、faq 或 policy")


@dataclass
class LoadResult:
    documents: list[Document]
    errors: list[DocumentInvalid]


def load_folder(folder: Path, catalog: Catalog | None = None) -> LoadResult:
    """Every document under a source folder; invalid files are reported, not fatal."""
    catalog = catalog or Catalog.load(folder)
    docs: list[Document] = []
    errors: list[DocumentInvalid] = []
    parsers = (("guides", "*.md", parse_guide), ("policies", "*.md", parse_policy))
    for sub, pattern, parse in parsers:
        for path in sorted((folder / sub).glob(pattern)):
            name = f"{sub}/{path.name}"
            try:
                docs.append(parse(_read_text(path, name), name, catalog))
            except DocumentInvalid as exc:
                errors.append(exc)
    for path in sorted((folder / "faq").glob("*.y*ml")):
        name = f"faq/{path.name}"
        try:
            rows = _parse_yaml(_read_text(path, name), name)
            if not isinstance(rows, list):
                raise DocumentInvalid(name, "(file)", "应为问答列表（每条以 - 开头）")
        except DocumentInvalid as exc:
            errors.append(exc)
            continue
        for i, row in enumerate(rows):
            try:
                docs.append(parse_faq_entry(row, f"{name}#{i + 1}", catalog))
            except DocumentInvalid as exc:
                errors.append(exc)
    seen: dict[str, str] = {}
    unique: list[Document] = []
    for d in docs:
        if d.id in seen:
            errors.append(
                DocumentInvalid(
                    d.source, "question" if d.kind == "faq" else "id", f"与 {seen[d.id]} 重复"
                )
            )
            continue
        seen[d.id] = d.source
        unique.append(d)
    return LoadResult(unique, errors)

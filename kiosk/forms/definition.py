"""A form sample's definition: structured data we write (one YAML file per form), from which
the product draws the blank form and the filled-in sample itself.

    id: residence-permit-application
    title: 居住证申领登记表
    department: police            # a department code of the catalogue
    services: [residence-permit]  # catalogue item ids this form is filled in for
    tags: [居住证, 流动人口]
    summary: 非本市户籍人员在本区居住满半年，申领居住证时填写。
    issuer: 公安分局出入境与户政管理大队   # printed under the title (optional)
    sections:
      - title: 申请人基本信息
        fields:
          - key: name
            label: 姓名
            kind: text          # text | multiline | date | choice | checkbox | id_number
                                # | phone | number | signature
            width: half         # half | full (multiline is always full)
            sample: 张晓明
            how: 与居民身份证上的姓名一致
            mistakes: [写简称或曾用名]
            required: true      # default true
            options: [男, 女]    # choice and checkbox only; the sample is one of them
                                # (checkbox: a list of them)
    notes: [填表说明一行, …]      # printed at the foot of the form

Fields are numbered 1..N in order across sections; the sample's callouts and the field
explanations use the same numbers. Every problem names the field, e.g.
``sections[0].fields[2].sample``."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kiosk.errors import FormInvalid
from kiosk.queue import idcard

FORM_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,63}$")
FIELD_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
KINDS = (
    "text",
    "multiline",
    "date",
    "choice",
    "checkbox",
    "id_number",
    "phone",
    "number",
    "signature",
)
WIDTHS = ("half", "full")
TOP_KEYS = {"id", "title", "department", "services", "tags", "summary", "issuer", "sections"}
TOP_KEYS_OPTIONAL = {"notes"}
FIELD_KEYS = {"key", "label", "kind", "sample", "how"}
FIELD_KEYS_OPTIONAL = {"width", "mistakes", "required", "options"}
MAX_FIELDS = 60


@dataclass(frozen=True)
class FormField:
    number: int  # 1..N across the form: the callout on the sample
    key: str
    label: str
    kind: str
    width: str
    sample: str  # checkbox samples are joined with "、"
    how: str  # what to write
    mistakes: tuple[str, ...]
    required: bool
    options: tuple[str, ...]
    section: str

    @property
    def chosen(self) -> tuple[str, ...]:
        """The options ticked on the sample (choice and checkbox)."""
        return tuple(self.sample.split("、")) if self.options else ()


@dataclass(frozen=True)
class FormSection:
    title: str
    fields: tuple[FormField, ...]


@dataclass(frozen=True)
class FormDefinition:
    id: str
    title: str
    department: str
    services: tuple[str, ...]
    tags: tuple[str, ...]
    summary: str
    issuer: str
    sections: tuple[FormSection, ...]
    notes: tuple[str, ...]
    raw: dict[str, Any]  # as written: what is stored and versioned

    @property
    def fields(self) -> tuple[FormField, ...]:
        return tuple(f for s in self.sections for f in s.fields)

    @property
    def digest(self) -> str:
        """Identifies the content: the same definition uploaded twice is one version."""
        return content_digest(self.raw)

    def checklist_lines(self) -> tuple[str, ...]:
        """One line per field for the ticket printer: 1. 姓名：与身份证一致（勿写简称）."""
        lines = []
        for f in self.fields:
            line = f"{f.label}：{f.how}"
            if f.mistakes:
                line += f"（注意：{f.mistakes[0]}）"
            lines.append(line)
        return tuple(lines)


def content_digest(raw: dict[str, Any]) -> str:
    canonical = json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_definition(
    data: Any,
    departments: Iterable[str] | None = None,
    services: Iterable[str] | None = None,
    source: str = "",
) -> FormDefinition:
    """Checks ``data`` (parsed YAML or JSON) and builds the definition; ``departments`` and
    ``services``, when given, are the catalogue's codes the form must refer to."""

    def bad(field: str, problem: str) -> FormInvalid:
        return FormInvalid(field, problem, source)

    if not isinstance(data, dict):
        raise bad("(top level)", "must be a mapping of id, title, department, …")
    data = _json_safe(data)  # YAML's dates become text: what is stored is plain JSON
    _keys(data, TOP_KEYS, TOP_KEYS_OPTIONAL, "", bad)
    form_id = _text(data, "id", "", bad)
    if not FORM_ID.fullmatch(form_id):
        raise bad("id", f"{form_id!r} must be lowercase letters, digits and '-' (3-64)")
    department = _text(data, "department", "", bad)
    known_departments = set(departments) if departments is not None else None
    if known_departments is not None and department not in known_departments:
        raise bad("department", f"{department!r} is not a department of the catalogue")
    items = _texts(data, "services", "", bad, minimum=1)
    if services is not None:
        known = set(services)
        for i, item in enumerate(items):
            if item not in known:
                raise bad(f"services[{i}]", f"{item!r} is not a service item of the catalogue")
    tags = _texts(data, "tags", "", bad, minimum=1)
    sections_raw = data["sections"]
    if not isinstance(sections_raw, list) or not sections_raw:
        raise bad("sections", "must be a non-empty list")
    sections: list[FormSection] = []
    keys: set[str] = set()
    number = 0
    for s, section in enumerate(sections_raw):
        where = f"sections[{s}]"
        if not isinstance(section, dict):
            raise bad(where, "must be a mapping of title and fields")
        _keys(section, {"title", "fields"}, set(), where, bad)
        title = _text(section, "title", where, bad)
        fields_raw = section["fields"]
        if not isinstance(fields_raw, list) or not fields_raw:
            raise bad(f"{where}.fields", "must be a non-empty list")
        fields: list[FormField] = []
        for i, raw_field in enumerate(fields_raw):
            number += 1
            fields.append(_field(raw_field, f"{where}.fields[{i}]", number, title, keys, bad))
        sections.append(FormSection(title, tuple(fields)))
    if number > MAX_FIELDS:
        raise bad("sections", f"{number} fields; at most {MAX_FIELDS} fit on one A4 page")
    return FormDefinition(
        id=form_id,
        title=_text(data, "title", "", bad),
        department=department,
        services=items,
        tags=tags,
        summary=_text(data, "summary", "", bad),
        issuer=_text(data, "issuer", "", bad),
        sections=tuple(sections),
        notes=_texts(data, "notes", "", bad, minimum=0) if "notes" in data else (),
        raw=data,
    )


def _field(raw: Any, where: str, number: int, section: str, keys: set[str], bad: Any) -> FormField:
    if not isinstance(raw, dict):
        raise bad(where, "must be a mapping of key, label, kind, sample and how")
    _keys(raw, FIELD_KEYS, FIELD_KEYS_OPTIONAL, where, bad)
    key = _text(raw, "key", where, bad)
    if not FIELD_KEY.fullmatch(key):
        raise bad(f"{where}.key", f"{key!r} must be lowercase letters, digits and '_'")
    if key in keys:
        raise bad(f"{where}.key", f"{key!r} is used twice in this form")
    keys.add(key)
    kind = _text(raw, "kind", where, bad)
    if kind not in KINDS:
        raise bad(f"{where}.kind", f"{kind!r} must be one of {', '.join(KINDS)}")
    width = raw.get("width", "full" if kind == "multiline" else "half")
    if width not in WIDTHS:
        raise bad(f"{where}.width", f"{width!r} must be half or full")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise bad(f"{where}.required", "must be true or false")
    options = _texts(raw, "options", where, bad, minimum=2) if "options" in raw else ()
    if kind in ("choice", "checkbox") and not options:
        raise bad(f"{where}.options", f"a {kind} field needs at least two options")
    if options and kind not in ("choice", "checkbox"):
        raise bad(f"{where}.options", f"only choice and checkbox fields have options, not {kind}")
    sample = _sample(raw, kind, options, f"{where}.sample", bad)
    mistakes = _texts(raw, "mistakes", where, bad, minimum=0) if "mistakes" in raw else ()
    return FormField(
        number=number,
        key=key,
        label=_text(raw, "label", where, bad),
        kind=kind,
        width="full" if kind == "multiline" else width,
        sample=sample,
        how=_text(raw, "how", where, bad),
        mistakes=mistakes,
        required=required,
        options=options,
        section=section,
    )


def _sample(raw: dict[str, Any], kind: str, options: tuple[str, ...], where: str, bad: Any) -> str:
    value = raw["sample"]
    if kind == "checkbox":
        chosen = [value] if isinstance(value, str) else value
        if not isinstance(chosen, list) or not chosen:
            raise bad(where, "a checkbox sample is one option or a list of options")
        for c in chosen:
            if c not in options:
                raise bad(where, f"{c!r} is not one of the options")
        return "、".join(str(c) for c in chosen)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise bad(where, "must be non-empty text (what a resident would write)")
    value = value.strip()
    if kind == "choice" and value not in options:
        raise bad(where, f"{value!r} is not one of the options")
    if kind == "id_number" and not re.fullmatch(r"\d{17}[\dX]", value):
        raise bad(where, "an ID number sample must be 18 characters (17 digits and 0-9 or X)")
    if kind == "id_number" and idcard.check_digit(value[:17]) != value[17]:
        # residents copy the sample: it must be a number the kiosks' own check would accept
        raise bad(where, f"the check digit should be {idcard.check_digit(value[:17])} (GB 11643)")
    if kind == "phone" and not re.fullmatch(r"[\d-]{7,13}", value):
        raise bad(where, "a phone sample must be digits (7-13, '-' allowed)")
    if kind == "date" and not re.fullmatch(r"\d{4}(-\d{2}(-\d{2})?|年.*)", value):
        raise bad(where, "a date sample must look like 2026-03-01 or 2026年3月1日")
    return value


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _keys(
    data: dict[str, Any], required: set[str], optional: set[str], where: str, bad: Any
) -> None:
    prefix = f"{where}." if where else ""
    for key in sorted(required - set(data)):
        raise bad(f"{prefix}{key}", "is missing")
    for key in sorted(set(data) - required - optional):
        raise bad(f"{prefix}{key}", "is not a known key (a typo?)")


def _text(data: dict[str, Any], key: str, where: str, bad: Any) -> str:
    value = data[key]
    name = f"{where}.{key}" if where else key
    if not isinstance(value, str) or not value.strip():
        raise bad(name, "must be non-empty text")
    if len(value) > 400:
        raise bad(name, f"is {len(value)} characters long; at most 400")
    return value.strip()


def _texts(data: dict[str, Any], key: str, where: str, bad: Any, minimum: int) -> tuple[str, ...]:
    value = data[key]
    name = f"{where}.{key}" if where else key
    if not isinstance(value, list) or len(value) < minimum:
        raise bad(name, f"must be a list of at least {minimum} texts")
    out = []
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise bad(f"{name}[{i}]", "must be non-empty text")
        out.append(v.strip())
    return tuple(out)

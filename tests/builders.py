"""Builders of knowledge-base source text: valid by default, breakable field by field.

make_guide_text()                                 # a valid guide for residence-permit
make_guide_text(fee=DROP)                         # the same without its fee
make_guide_text(materials=[material(), material(form="扫描件")])
make_guide_text(sections={"办理条件": "…"})        # no 办理流程 section
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from banshi.settings import SAMPLE_KB_DIR

DROP = object()  # an override value that removes the key

DEFAULT_SECTIONS = {
    "办理条件": "在本区居住半年以上，并有合法稳定就业、合法稳定住所、连续就读三个条件之一。",
    "办理流程": "1. 取号；\n2. 到1楼A区居住证窗口提交材料；\n3. 15个工作日内领证。",
}


def material(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": "居民身份证", "form": "原件", "count": 1, "note": ""}
    return _apply(m, overrides)


def _apply(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for k, v in overrides.items():
        if v is DROP:
            base.pop(k, None)
        else:
            base[k] = v
    return base


def guide_meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "id": "residence-permit",
        "title": "居住证申领",
        "department": "police",
        "audience": "在本区居住半年以上的外地户籍居民",
        "aliases": ["办居住证", "暂住证"],
        "time_limit": "受理之日起15个工作日",
        "fee": "首次申领免费",
        "window": "1楼A区 A05—A06",
        "phone": "8123 4511",
        "online": "“青禾办”微信小程序",
        "legal_basis": ["《居住证暂行条例》"],
        "materials": [
            material(name="居民身份证"),
            material(name="合法稳定住所证明", form="原件及复印件"),
            material(name="就业或就读证明", form="复印件", count=2, note="三者提供其一"),
        ],
    }
    return _apply(meta, overrides)


def make_guide_text(
    sections: dict[str, str] | None = None, body: str | None = None, **overrides: Any
) -> str:
    """A guide in the source format (YAML front matter + Markdown sections)."""
    meta = guide_meta(**overrides)
    if body is None:
        body = "\n\n".join(f"## {h}\n\n{t}" for h, t in (sections or DEFAULT_SECTIONS).items())
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n\n{body}\n"


def make_policy_text(body: str | None = None, **overrides: Any) -> str:
    meta: dict[str, Any] = {
        "id": "policy-test",
        "title": "青禾市测试管理办法",
        "issuer": "青禾市人民政府",
        "doc_no": "青政发〔2024〕1号",
        "effective": "2024-01-01",
        "items": ["residence-permit"],
    }
    meta = _apply(meta, overrides)
    if body is None:
        body = "\n\n".join(f"第{n}条 {policy_article(n)}" for n in ("一", "二", "三"))
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False)
    return f"---\n{front}---\n\n{body}\n"


def policy_article(n: str) -> str:
    return (
        f"本条编号为{n}。居住证持有人可以按照本办法享受基本公共服务和办事便利，"
        "具体包括义务教育、基本公共就业服务、基本公共卫生服务、公共文化体育服务、法律援助等；"
        "各部门应当按照职责做好服务保障工作，不得违规收取费用，不得增设前置条件。"
    )


def faq_entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "item": "residence-permit",
        "question": "居住证可以请亲戚代领吗？",
        "answer": "可以。代领人带申请人的受理回执和代领人本人身份证原件，到1楼A区A05窗口领取。",
    }
    return _apply(entry, overrides)


def faq_json(**overrides: Any) -> str:
    """An FAQ as the admin API takes it: JSON text with item/question/answer."""
    return json.dumps(faq_entry(**overrides), ensure_ascii=False)


def copy_sample(dest: Path) -> Path:
    """A private, editable copy of the sample source folder."""
    shutil.copytree(SAMPLE_KB_DIR, dest)
    return dest

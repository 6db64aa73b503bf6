"""Pages: a question page for residents and a readable page per service guide."""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from banshi.pages import html_page
from knowledge_base.api import KbDep

router = APIRouter(include_in_schema=False)
PAGES = Path(__file__).resolve().parent / "pages"


@router.get("/", response_class=HTMLResponse)
def ask_page() -> HTMLResponse:
    return html_page((PAGES / "ask.html").read_text(encoding="utf-8"))


@router.get("/guides/{item_id}", response_class=HTMLResponse)
def guide_page(item_id: str, kb: KbDep) -> HTMLResponse:
    g = kb.get_document(f"guide:{item_id}").data
    rows = [
        ("办理对象", g["audience"]),
        ("办理时限", g["time_limit"]),
        ("收费标准", g["fee"]),
        ("办理窗口", g["window"]),
        ("咨询电话", g["phone"]),
        ("网上办理", g.get("online", "")),
    ]
    facts = "".join(f"<tr><th>{k}</th><td>{escape(v)}</td></tr>" for k, v in rows if v)
    materials = "".join(
        f"<li>{escape(m['name'])}（{m['form']}{m['count']}份）"
        + (f"<br><small>{escape(m['note'])}</small>" if m["note"] else "")
        + "</li>"
        for m in g["materials"]
    )
    sections = "".join(
        f"<h2>{escape(s['heading'])}</h2><p>{escape(s['text'])}</p>" for s in g["sections"]
    )
    basis = "".join(f"<li>{escape(b)}</li>" for b in g["legal_basis"])
    html = f"""<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(g["title"])} · 办事指南</title>
<style>body{{font:17px/1.7 system-ui,"Noto Sans CJK SC",sans-serif;max-width:760px;margin:auto;
padding:16px;color:#1d2733}}th{{text-align:left;white-space:nowrap;padding-right:12px;
vertical-align:top}}p{{white-space:pre-wrap}}h1{{color:#b8282e}}</style></head><body>
<p><a href="/">← 返回问答</a></p><h1>{escape(g["title"])}</h1><table>{facts}</table>
<h2>申请材料</h2><ol>{materials}</ol>{sections}<h2>政策依据</h2><ul>{basis}</ul></body></html>"""
    return html_page(html)

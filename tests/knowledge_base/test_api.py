"""HTTP API and pages of the knowledge base.

Answers that matter use the session's real knowledge base (read-only, marker ``encoder``);
admin changes use a private knowledge base with the hashing encoder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from builders import faq_json, make_guide_text, material
from support import TestClient, api_client, bearer

from knowledge_base.service import KnowledgeBase

NEW_QUESTION = "居住证可以请亲戚代领吗？"
NEW_ANSWER = "可以。代领人带申请人的受理回执和代领人本人身份证原件，到1楼A区A05窗口领取。"


@pytest.fixture(scope="module")
def real_client(real_kb: KnowledgeBase) -> Iterator[TestClient]:
    with api_client(real_kb.settings, real_kb) as client:
        yield client


# -- reading (real encoder) -------------------------------------------------------------------
@pytest.mark.encoder
def test_ask_returns_the_answer(real_client: TestClient) -> None:
    r = real_client.post("/api/kb/ask", json={"question": "社保卡丢了怎么办"})
    assert r.status_code == 200
    body = r.json()
    assert body["answered"] is True
    assert body["item_id"] == "social-card-lost"
    assert "B01" in body["answer"]
    assert body["sources"][0]["id"].endswith("social-card-lost") or body["sources"][0][
        "id"
    ].startswith("faq:social-card-lost:")
    assert body["item"]["title"] == "社会保障卡挂失与补换"
    assert body["notice"] == ""


@pytest.mark.encoder
def test_ask_out_of_scope_over_http(real_client: TestClient) -> None:
    body = real_client.post("/api/kb/ask", json={"question": "今天天气怎么样"}).json()
    assert body["answered"] is False
    assert "没有找到" in body["answer"]
    assert body["candidates"]


@pytest.mark.encoder
def test_ask_long_question_over_http_is_cut_with_a_notice(real_client: TestClient) -> None:
    body = real_client.post("/api/kb/ask", json={"question": "社保卡丢了怎么办" * 1250}).json()
    assert "500" in body["notice"]


@pytest.mark.encoder
def test_items_lists_the_catalog(real_client: TestClient) -> None:
    r = real_client.get("/api/kb/items")
    assert r.status_code == 200
    items = r.json()
    assert len(items) == 38
    by_id = {i["id"]: i for i in items}
    assert by_id["residence-permit"] == {
        "id": "residence-permit",
        "name": "居住证申领",
        "department": "公安分局",
    }


@pytest.mark.encoder
def test_documents_can_be_listed_and_filtered(real_client: TestClient) -> None:
    docs = real_client.get("/api/kb/documents", params={"kind": "faq", "item": "hall-info"}).json()
    assert docs
    assert {d["kind"] for d in docs} == {"faq"}
    assert {d["item_id"] for d in docs} == {"hall-info"}
    assert "周六上班吗？" in {d["title"] for d in docs}
    assert len(real_client.get("/api/kb/documents", params={"kind": "guide"}).json()) == 38


@pytest.mark.encoder
def test_get_one_document(real_client: TestClient) -> None:
    r = real_client.get("/api/kb/documents/guide:residence-permit")
    assert r.status_code == 200
    body = r.json()
    assert body["title"] == "居住证申领"
    assert body["data"]["window"].startswith("1楼A区")


@pytest.mark.encoder
def test_unknown_document_is_404_in_chinese(real_client: TestClient) -> None:
    r = real_client.get("/api/kb/documents/guide:no-such-thing")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "没有找到这份文档。"


@pytest.mark.encoder
def test_home_page_is_the_question_page(real_client: TestClient) -> None:
    r = real_client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "办事问答" in r.text


@pytest.mark.encoder
def test_guide_page_renders_the_guide(real_client: TestClient) -> None:
    r = real_client.get("/guides/residence-permit")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>居住证申领</h1>" in r.text
    assert "申请材料" in r.text
    assert "居民身份证（原件1份）" in r.text
    assert "1楼A区 A05—A06" in r.text
    assert "《居住证暂行条例》" in r.text


@pytest.mark.encoder
def test_guide_page_for_unknown_item_is_404(real_client: TestClient) -> None:
    r = real_client.get("/guides/moon-landing")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "没有找到这份文档。"


# -- admin CRUD (hashing encoder) -----------------------------------------------------------
def _create(client: TestClient, token: str, source: str, kind: str = "faq"):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/kb/documents", json={"kind": kind, "source": source}, headers=bearer(token)
    )


def test_create_without_a_token_is_401(shared_client: TestClient) -> None:
    r = shared_client.post(
        "/api/kb/documents", json={"kind": "faq", "source": faq_json(question=NEW_QUESTION)}
    )
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "请先登录。"


def test_create_with_an_agent_token_is_403(shared_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    r = _create(shared_client, token_for("agent"), faq_json(question=NEW_QUESTION))
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "您没有执行此操作的权限。"
    assert (
        shared_client.post("/api/kb/ask", json={"question": NEW_QUESTION}).json()["answer"]
        != NEW_ANSWER
    )


def test_faq_lifecycle_create_edit_delete(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    """GIVEN an administrator
    WHEN they create an FAQ, edit its answer and delete it over the API
    THEN each step is served at once: the exact question gets the new FAQ, then the edited
    answer, and after the deletion the FAQ is gone."""
    token = token_for("admin")

    created = _create(hashing_client, token, faq_json(question=NEW_QUESTION, answer=NEW_ANSWER))
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["kind"] == "faq"
    assert doc["item_id"] == "residence-permit"
    doc_id = doc["id"]
    assert doc_id.startswith("faq:residence-permit:")

    asked = hashing_client.post("/api/kb/ask", json={"question": NEW_QUESTION}).json()
    assert asked["answered"] is True
    assert asked["item_id"] == "residence-permit"
    assert asked["sources"][0]["id"] == doc_id
    assert asked["answer"].startswith(NEW_ANSWER)

    edited_answer = "不可以代领，居住证须本人持受理回执到窗口领取，或选择邮寄到家。"
    put = hashing_client.put(
        f"/api/kb/documents/{doc_id}",
        json={"kind": "faq", "source": faq_json(question=NEW_QUESTION, answer=edited_answer)},
        headers=bearer(token),
    )
    assert put.status_code == 200, put.text
    assert put.json()["data"]["answer"] == edited_answer
    asked = hashing_client.post("/api/kb/ask", json={"question": NEW_QUESTION}).json()
    assert asked["answer"].startswith(edited_answer)
    assert NEW_ANSWER not in asked["answer"]
    assert (
        hashing_client.get(f"/api/kb/documents/{doc_id}").json()["data"]["answer"] == edited_answer
    )

    deleted = hashing_client.delete(f"/api/kb/documents/{doc_id}", headers=bearer(token))
    assert deleted.status_code == 204
    assert deleted.content == b""
    gone = hashing_client.get(f"/api/kb/documents/{doc_id}")
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "没有找到这份文档。"
    asked = hashing_client.post("/api/kb/ask", json={"question": NEW_QUESTION}).json()
    assert all(s["id"] != doc_id for s in asked["sources"])
    assert edited_answer not in asked["answer"]


def test_faq_can_be_created_from_yaml_text(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    source = "item: hall-info\nquestion: 大厅有母婴室吗？\nanswer: 有，在1楼大厅东侧。\n"
    r = _create(hashing_client, token_for("admin"), source)
    assert r.status_code == 201, r.text
    assert r.json()["item_id"] == "hall-info"


def test_invalid_guide_is_422_naming_the_field_and_the_served_index_still_answers(
    hashing_client: TestClient, token_for
) -> None:  # type: ignore[no-untyped-def]
    before = hashing_client.post("/api/kb/ask", json={"question": "居住证要带什么材料"}).json()
    assert before["item_id"] == "residence-permit"
    bad = make_guide_text(materials=[material(), material(name="租赁合同", form="扫描件")])
    r = hashing_client.put(
        "/api/kb/documents/guide:residence-permit",
        json={"kind": "guide", "source": bad},
        headers=bearer(token_for("admin")),
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "kb_document_invalid"
    assert error["fields"]["field"] == "materials[2].form"
    assert "materials[2].form" in error["message"]
    after = hashing_client.post("/api/kb/ask", json={"question": "居住证要带什么材料"}).json()
    assert after == before
    guide = hashing_client.get("/api/kb/documents/guide:residence-permit").json()
    assert [m["form"] for m in guide["data"]["materials"]][:2] == ["原件", "原件"]


def test_post_invalid_guide_is_422(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    bad = make_guide_text(title="居住证办理")
    r = _create(hashing_client, token_for("admin"), bad, kind="guide")
    assert r.status_code == 422
    assert r.json()["error"]["fields"]["field"] == "title"


@pytest.mark.parametrize(
    "source, field",
    [
        (faq_json(item="moon-landing"), "item"),
        (
            json.dumps({"item": "hall-info", "question": "有Wi-Fi吗？"}, ensure_ascii=False),
            "answer",
        ),
        ("item: [unclosed", "第1行"),
    ],
)
def test_post_invalid_faq_is_422(
    hashing_client: TestClient, token_for, source: str, field: str
) -> None:  # type: ignore[no-untyped-def]
    r = _create(hashing_client, token_for("admin"), source)
    assert r.status_code == 422
    assert r.json()["error"]["fields"]["field"] == field


def test_post_duplicate_is_409(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    token = token_for("admin")
    assert _create(hashing_client, token, faq_json(question=NEW_QUESTION)).status_code == 201
    again = _create(hashing_client, token, faq_json(question=NEW_QUESTION, answer="另一个答案。"))
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "这份文档已经存在，请用修改功能。"
    # the first version is still served
    doc_id = again.json()["error"]["fields"]["id"]
    assert (
        hashing_client.get(f"/api/kb/documents/{doc_id}").json()["data"]["answer"] != "另一个答案。"
    )


def test_post_guide_for_an_existing_item_is_409(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    r = _create(hashing_client, token_for("admin"), make_guide_text(), kind="guide")
    assert r.status_code == 409


def test_put_that_changes_the_id_is_422(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    token = token_for("admin")
    doc_id = _create(hashing_client, token, faq_json(question=NEW_QUESTION)).json()["id"]
    r = hashing_client.put(
        f"/api/kb/documents/{doc_id}",
        json={"kind": "faq", "source": faq_json(question="改了问题？")},
        headers=bearer(token),
    )
    assert r.status_code == 422
    assert r.json()["error"]["fields"]["field"] == "question"


def test_put_and_delete_of_unknown_documents_are_404(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    token = token_for("admin")
    put = hashing_client.put(
        "/api/kb/documents/faq:hall-info:0000000000",
        json={"kind": "faq", "source": faq_json(item="hall-info")},
        headers=bearer(token),
    )
    assert put.status_code == 404
    delete = hashing_client.delete(
        "/api/kb/documents/faq:hall-info:0000000000", headers=bearer(token)
    )
    assert delete.status_code == 404


def test_guide_edit_is_served_on_its_page_escaped(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    """An administrator's text is shown on the public guide page as text, never as HTML."""
    materials = [material(name="居民身份证", note="<script>alert('x')</script>")]
    r = hashing_client.put(
        "/api/kb/documents/guide:residence-permit",
        json={"kind": "guide", "source": make_guide_text(materials=materials, fee="免费 <b>")},
        headers=bearer(token_for("admin")),
    )
    assert r.status_code == 200, r.text
    page = hashing_client.get("/guides/residence-permit").text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "免费 &lt;b&gt;" in page


def test_deleted_guide_page_is_404(hashing_client: TestClient, token_for) -> None:  # type: ignore[no-untyped-def]
    r = hashing_client.delete(
        "/api/kb/documents/guide:hall-info", headers=bearer(token_for("admin"))
    )
    assert r.status_code == 204
    assert hashing_client.get("/guides/hall-info").status_code == 404
    # the item's FAQs still answer, without the guide's facts
    body = hashing_client.post("/api/kb/ask", json={"question": "周六上班吗？"}).json()
    assert body["item_id"] == "hall-info"

"""Importing FAQ spreadsheets (csv, jsonl, xlsx) and the ``banshi kb`` command line."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from builders import copy_sample, make_guide_text, material
from click.testing import CliRunner
from openpyxl import Workbook
from sqlalchemy import func, select
from support import build_settings

from banshi.cli import main
from banshi.db import Database
from banshi.settings import get_settings
from knowledge_base import service
from knowledge_base.importer import import_faq_file
from knowledge_base.models import KbDocument
from knowledge_base.service import KnowledgeBase
from knowledge_base.source import Catalog, faq_id, parse_faq_file

CONTRACT_KEYS = {"question", "answered", "item_id", "confidence", "answer", "sources", "candidates"}

# (question, answer, department, item) — rows 2..5 of the sheet; row 3 has no answer and
# row 4 names a department the centre does not have.
ROWS = [
    (
        "居住证可以请亲戚代领吗？",
        "可以，代领人带受理回执和本人身份证到A05窗口领取。",
        "公安分局",
        "residence-permit",
    ),
    ("居住证签注要收费吗？", "", "公安分局", "residence-permit"),
    ("外星人能办居住证吗？", "不能。", "外星事务局", "residence-permit"),
    (
        "社保卡补卡当天能拿到吗？",
        "窗口即时制卡的，约20分钟当场领卡。",
        "人社局",
        "社会保障卡挂失与补换",
    ),
]
HEADER = ("问题", "答案", "部门", "事项")


def write_csv(path: Path, rows=ROWS, header=HEADER) -> Path:  # type: ignore[no-untyped-def]
    with path.open("w", encoding="utf-8-sig", newline="") as f:  # Excel writes a BOM
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_jsonl(path: Path, rows=ROWS, header=HEADER) -> Path:  # type: ignore[no-untyped-def]
    path.write_text(
        "".join(
            json.dumps(dict(zip(header, r, strict=True)), ensure_ascii=False) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    return path


def write_xlsx(path: Path, rows=ROWS, header=HEADER) -> Path:  # type: ignore[no-untyped-def]
    wb = Workbook()
    ws = wb.active
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    wb.save(path)
    return path


def _count(kb: KnowledgeBase) -> int:
    with kb.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(KbDocument)) or 0)


def _check_report(report, name: str, line_of_row: dict[int, int]) -> None:  # type: ignore[no-untyped-def]
    """Two of four rows imported; the other two skipped naming their row number."""
    assert report.rows == 4
    assert [(d.item_id, d.title) for d in report.documents] == [
        ("residence-permit", "居住证可以请亲戚代领吗？"),
        ("social-card-lost", "社保卡补卡当天能拿到吗？"),
    ]
    assert report.skipped == [
        f"{name} 第{line_of_row[3]}行：问题或答案为空",
        f"{name} 第{line_of_row[4]}行：部门“外星事务局”不在中心部门列表中",
    ]


@pytest.mark.parametrize("writer", [write_csv, write_xlsx], ids=["csv", "xlsx"])
def test_import_spreadsheet_with_chinese_headers(
    hashing_kb: KnowledgeBase, tmp_path: Path, writer
) -> None:  # type: ignore[no-untyped-def]
    path = writer(tmp_path / f"faq.{writer.__name__.removeprefix('write_')}")
    before = _count(hashing_kb)

    report = import_faq_file(hashing_kb, path)

    # spreadsheet rows: the header is row 1, so the n-th data row is row n + 1
    _check_report(report, path.name, {3: 3, 4: 4})
    assert _count(hashing_kb) == before + 2
    new_id = faq_id("residence-permit", "居住证可以请亲戚代领吗？")
    assert hashing_kb.get_document(new_id).data["answer"].startswith("可以，代领人")
    answer = hashing_kb.ask("居住证可以请亲戚代领吗？")
    assert answer.item_id == "residence-permit"
    assert answer.sources[0]["id"] == new_id


def test_import_jsonl_reports_the_line_number(hashing_kb: KnowledgeBase, tmp_path: Path) -> None:
    """GIVEN a JSON Lines file (no header line: row n is line n)
    THEN a skipped row is reported with its line number in the file."""
    path = write_jsonl(tmp_path / "faq.jsonl")
    report = import_faq_file(hashing_kb, path)
    # rows 3 and 4 of ROWS are lines 2 and 3 of the file
    _check_report(report, "faq.jsonl", {3: 2, 4: 3})


def test_item_column_variants(hashing_kb: KnowledgeBase, tmp_path: Path) -> None:
    rows = [("大厅有母婴室吗？", "有，在1楼大厅东侧。", "政务服务中心", "hall-info")]
    path = write_csv(
        tmp_path / "faq.csv", rows=rows, header=("常见问题", "答复内容", "所属部门", "事项编号")
    )
    report = import_faq_file(hashing_kb, path, dry_run=True)
    assert [d.item_id for d in report.documents] == ["hall-info"]
    assert report.skipped == []


def test_unknown_item_is_skipped(hashing_kb: KnowledgeBase, tmp_path: Path) -> None:
    rows = [("登月要什么材料？", "宇航服。", "", "登月申请")]
    report = import_faq_file(hashing_kb, write_csv(tmp_path / "faq.csv", rows=rows))
    assert report.documents == []
    assert report.skipped == ["faq.csv 第2行：事项“登月申请”不在事项目录中"]


def test_dry_run_stores_nothing(hashing_kb: KnowledgeBase, tmp_path: Path) -> None:
    before, revision = _count(hashing_kb), hashing_kb.revision
    report = import_faq_file(hashing_kb, write_csv(tmp_path / "faq.csv"), dry_run=True)
    assert len(report.documents) == 2
    assert _count(hashing_kb) == before
    assert hashing_kb.revision == revision
    assert faq_id("residence-permit", "居住证可以请亲戚代领吗？") not in hashing_kb.docs


def test_out_writes_a_valid_source_file(hashing_kb: KnowledgeBase, tmp_path: Path) -> None:
    out = tmp_path / "imported.yml"
    import_faq_file(hashing_kb, write_csv(tmp_path / "faq.csv"), dry_run=True, out=out)
    docs = parse_faq_file(out.read_text(encoding="utf-8"), "faq/imported.yml", hashing_kb.catalog)
    assert [d.item_id for d in docs] == ["residence-permit", "social-card-lost"]


def test_a_question_repeated_in_the_sheet_does_not_break_the_import(
    hashing_kb: KnowledgeBase, tmp_path: Path
) -> None:
    """GIVEN a sheet where the same question appears on two rows (common in hand-kept sheets)
    WHEN it is imported
    THEN the import completes: one FAQ is stored and the repeat is reported, not a crash."""
    rows = [ROWS[0], ROWS[0]]
    before = _count(hashing_kb)
    report = import_faq_file(hashing_kb, write_csv(tmp_path / "faq.csv", rows=rows))
    assert _count(hashing_kb) == before + 1
    assert len(report.documents) + len(report.skipped) == 2


def test_unsupported_file_type(hashing_kb: KnowledgeBase, tmp_path: Path) -> None:
    from knowledge_base.errors import DocumentInvalid

    path = tmp_path / "faq.txt"
    path.write_text("问题,答案\n", encoding="utf-8")
    with pytest.raises(DocumentInvalid) as exc:
        import_faq_file(hashing_kb, path)
    assert exc.value.source == "faq.txt"


@pytest.mark.encoder
def test_rows_without_an_item_are_placed_by_retrieval(
    real_kb: KnowledgeBase, tmp_path: Path
) -> None:
    """GIVEN a sheet with only question, answer and department columns
    WHEN it is imported (dry run: the shared knowledge base is not changed)
    THEN each row lands on the item of its department that the question is about."""
    rows = [
        ("居住证每年签注需要本人去吗？", "可以在“青禾办”小程序签注，不用本人到窗口。", "公安分局"),
        (
            "租房提取公积金能每个月自动提吗？",
            "可以签约按月委托提取，每月自动转入银行卡。",
            "住房公积金管理中心",
        ),
        ("社保卡丢了补一张要多少钱？", "社保卡补卡免收工本费，窗口即时制卡。", "人社局"),
    ]
    path = write_csv(tmp_path / "faq.csv", rows=rows, header=("问题", "答案", "部门"))
    revision = real_kb.revision
    report = import_faq_file(real_kb, path, dry_run=True)
    assert report.skipped == []
    assert [d.item_id for d in report.documents] == [
        "residence-permit",
        "hpf-withdraw-rent",
        "social-card-lost",
    ]
    assert real_kb.revision == revision


# -- the command line ------------------------------------------------------------------------
@pytest.fixture
def cli_env(
    tmp_path: Path, hashing_template: Path, shared_text, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """Environment for ``banshi`` in-process: a private data directory (pre-filled with the
    saved hashing-encoder knowledge base) and the hashing encoder. The knowledge bases the
    commands make share the session's text pipeline, so that each command starts in well
    under a second instead of loading jieba again."""
    data = tmp_path / "cli-data"
    shutil.copytree(hashing_template, data)
    monkeypatch.setattr(service, "TextPipeline", lambda: shared_text)
    get_settings.cache_clear()
    yield {"BANSHI_DATA_DIR": str(data), "BANSHI_KB_ENCODER": "hashing", "BANSHI_ENV": "test"}
    get_settings.cache_clear()


def test_cli_validate_broken_folder(tmp_path: Path, cli_env: dict[str, str]) -> None:
    folder = copy_sample(tmp_path / "kb")
    (folder / "guides" / "residence-permit.md").write_text(
        make_guide_text(materials=[material(), material(form="扫描件")]), encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["kb", "validate", str(folder)], env=cli_env)
    assert result.exit_code == 1
    assert "guides/residence-permit.md" in result.stderr
    assert "materials[2].form" in result.stderr
    assert "1 problems" in result.stdout


def test_cli_validate_sample_folder(cli_env: dict[str, str]) -> None:
    from banshi.settings import SAMPLE_KB_DIR

    result = CliRunner().invoke(main, ["kb", "validate", str(SAMPLE_KB_DIR)], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "0 problems" in result.stdout


def test_cli_ask_jsonl(cli_env: dict[str, str]) -> None:
    questions = ["社保卡丢了怎么办", "", "今天天气怎么样"]
    result = CliRunner().invoke(
        main, ["kb", "ask", "--jsonl"], input="\n".join(questions) + "\n", env=cli_env
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    for q, rec in zip(questions, records, strict=True):
        assert set(rec) == CONTRACT_KEYS
        assert rec["question"] == q
    assert records[0]["item_id"] == "social-card-lost"
    assert records[1]["answered"] is False
    assert records[2]["answered"] is False
    assert "没有找到" in records[2]["answer"]


def test_cli_ask_one_question(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["kb", "ask", "周六上班吗？"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "办事大厅开放时间" in result.stdout
    assert "周六上午9:00—12:00" in result.stdout


def test_cli_ask_without_a_question_is_a_usage_error(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["kb", "ask"], env=cli_env)
    assert result.exit_code == 2
    assert "--jsonl" in result.stderr


def _stored_ids(cli_env: dict[str, str]) -> set[str]:
    db = Database(build_settings(Path(cli_env["BANSHI_DATA_DIR"])).resolved_database_url)
    try:
        with db.session() as s:
            return set(s.scalars(select(KbDocument.id)))
    finally:
        db.dispose()


def test_cli_import_faq_dry_run(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = write_csv(tmp_path / "faq.csv")
    before = _stored_ids(cli_env)
    result = CliRunner().invoke(main, ["kb", "import-faq", str(path), "--dry-run"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "would import 2 of 4 rows; 2 skipped" in result.stdout
    assert "faq.csv 第3行：问题或答案为空" in result.stderr
    assert _stored_ids(cli_env) == before


def test_cli_import_faq_stores(tmp_path: Path, cli_env: dict[str, str]) -> None:
    path = write_xlsx(tmp_path / "faq.xlsx")
    before = _stored_ids(cli_env)
    result = CliRunner().invoke(main, ["kb", "import-faq", str(path)], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "imported 2 of 4 rows; 2 skipped" in result.stdout
    assert _stored_ids(cli_env) - before == {
        faq_id("residence-permit", "居住证可以请亲戚代领吗？"),
        faq_id("social-card-lost", "社保卡补卡当天能拿到吗？"),
    }


def test_cli_load_reports_problems_and_keeps_valid_files(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    folder = copy_sample(tmp_path / "kb")
    (folder / "faq" / "zz_new.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "item": "hall-info",
                    "question": "大厅能充电吗？",
                    "answer": "综合咨询台旁有充电桩。",
                },
                {"item": "nope", "question": "？", "answer": "！"},
            ],
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["kb", "load", str(folder)], env=cli_env)
    assert result.exit_code == 1
    assert "faq/zz_new.yml#2" in result.stderr
    assert "loaded 305 documents; 1 problems" in result.stdout  # the sample + 1 new FAQ
    assert faq_id("hall-info", "大厅能充电吗？") in _stored_ids(cli_env)


def test_catalog_department_abbreviations_are_understood(hashing_kb: KnowledgeBase) -> None:
    from knowledge_base.importer import _department

    catalog: Catalog = hashing_kb.catalog
    assert _department(hashing_kb, "人社局") == "hrss"
    assert _department(hashing_kb, "公积金中心") == "hpf"
    assert _department(hashing_kb, "公安分局") == "police"
    assert _department(hashing_kb, "外星事务局") is None
    assert set(catalog.departments) >= {"hrss", "hpf", "police"}

"""The form library: definitions imported once, versions kept, uploads reaching every
process within the refresh time, a bad upload refused while the old version serves, and
view counts that add up under concurrency. On SQLite, and on PostgreSQL where marked."""

from __future__ import annotations

import datetime as dt
import shutil
import threading
from pathlib import Path

import pytest
from forms_builders import FORMS_DIR, RESIDENCE, Clock, make_library, residence_definition

from banshi.db import Database
from banshi.errors import NotFound
from kiosk.errors import FormInvalid

FORM = "residence-permit-application"


def only_residence(tmp_path: Path) -> Path:
    folder = tmp_path / "forms"
    folder.mkdir()
    shutil.copy(RESIDENCE, folder)
    return folder


def test_files_are_imported_once_and_an_unchanged_restart_adds_no_version(
    db: Database, tmp_path: Path
) -> None:
    library = make_library(db, tmp_path / "cache")
    library.start()
    assert library.count() == len(list(FORMS_DIR.glob("*.yml")))
    assert library.get(FORM).version == 1
    again = make_library(db, tmp_path / "cache")
    again.start()
    assert [v["version"] for v in again.versions(FORM)] == [1]
    assert again.versions(FORM)[0]["source"] == f"file forms/{RESIDENCE.name}"


def test_an_upload_is_a_new_version_and_other_processes_see_it_within_the_refresh(
    db: Database, tmp_path: Path
) -> None:
    folder = only_residence(tmp_path)
    clock = Clock()
    kiosk_a = make_library(db, tmp_path / "a", folder, clock=clock)
    kiosk_b = make_library(db, tmp_path / "b", folder, clock=clock)
    kiosk_a.start()
    kiosk_b.start()
    result = kiosk_a.store(
        residence_definition(summary="2027年起网上也可申领。"), "upload", "admin1"
    )
    assert result == {"id": FORM, "version": 2, "status": "created"}
    assert kiosk_a.get(FORM).form.summary == "2027年起网上也可申领。"
    assert kiosk_b.get(FORM).version == 1  # b looked less than refresh_s ago
    clock.now += 2.5
    assert kiosk_b.get(FORM).version == 2
    assert kiosk_b.get(FORM).form.summary == "2027年起网上也可申领。"
    same = kiosk_b.store(residence_definition(summary="2027年起网上也可申领。"), "upload", "admin2")
    assert same["status"] == "unchanged" and same["version"] == 2
    assert [v["created_by"] for v in kiosk_a.versions(FORM)] == ["admin1", ""]


def test_a_restart_does_not_undo_an_administrators_upload(db: Database, tmp_path: Path) -> None:
    folder = only_residence(tmp_path)
    make_library(db, tmp_path / "c", folder).start()
    make_library(db, tmp_path / "c", folder).store(
        residence_definition(title="居住证申领登记表（2027版）"), "upload", "admin"
    )
    restarted = make_library(db, tmp_path / "c", folder)
    restarted.start()
    assert restarted.get(FORM).form.title == "居住证申领登记表（2027版）"
    assert restarted.get(FORM).version == 2


def test_a_malformed_upload_is_refused_with_the_field_named_and_the_old_version_serves(
    db: Database, tmp_path: Path
) -> None:
    library = make_library(db, tmp_path / "d", only_residence(tmp_path))
    library.start()
    bad = residence_definition()
    bad["sections"][0]["fields"][1]["sample"] = "未知"
    with pytest.raises(FormInvalid) as caught:
        library.store(bad, "upload", "admin")
    assert caught.value.field == "sections[0].fields[1].sample"
    assert library.get(FORM).version == 1
    assert library.get(FORM).form.fields[1].sample == "男"
    assert [v["version"] for v in library.versions(FORM)] == [1]


def test_a_bad_file_is_named_at_import_and_the_rest_are_served(
    db: Database, tmp_path: Path
) -> None:
    folder = only_residence(tmp_path)
    (folder / "broken.yml").write_text("id: broken-form\ntitle: 坏表\n", encoding="utf-8")
    (folder / "notyaml.yml").write_text("id: [\n", encoding="utf-8")
    library = make_library(db, tmp_path / "e", folder)
    library.start()
    assert library.count() == 1
    assert any("broken.yml" in p and "department: is missing" in p for p in library.problems)
    assert any("notyaml.yml" in p and "not valid YAML" in p for p in library.problems)
    assert library.health()["status"] == "degraded"


def test_an_unknown_form_is_not_found_in_chinese(db: Database, tmp_path: Path) -> None:
    library = make_library(db, tmp_path / "f", only_residence(tmp_path))
    library.start()
    with pytest.raises(NotFound) as caught:
        library.get("no-such-form")
    assert caught.value.message == "这份样表不存在或已下架。"


def test_browsing_lists_departments_by_pinyin_initial_and_finds_similar_forms(
    db: Database, tmp_path: Path
) -> None:
    library = make_library(db, tmp_path / "g")
    library.start()
    index = library.department_index()
    assert [r["initial"] for r in index] == sorted(r["initial"] for r in index)
    police = next(r for r in index if r["code"] == "police")
    assert (police["name"], police["initial"]) == ("公安分局", "G")
    assert sum(r["count"] for r in index) == library.count()
    listed = library.search("", department="police")
    assert listed and {c["department_name"] for c in listed} == {"公安分局"}
    similar = library.similar(FORM)
    assert similar and FORM not in {s.form.id for s in similar}


def count_views(db: Database, tmp_path: Path) -> None:
    library = make_library(db, tmp_path / "h", only_residence(tmp_path))
    library.start()
    day = dt.date(2026, 12, 1)
    start = threading.Barrier(8)

    def view(channel: str) -> None:
        start.wait()
        for _ in range(25):
            library.record_view(FORM, channel, day)  # type: ignore[arg-type]

    threads = [
        threading.Thread(target=view, args=("kiosk" if i % 2 else "phone",)) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = library.view_counts(day, day)
    assert counts == [
        {
            "id": FORM,
            "title": "居住证申领登记表",
            "views": 200,
            "by_channel": {"kiosk": 100, "phone": 100},
        }
    ]


def test_views_add_up_when_eight_kiosks_count_at_once(db: Database, tmp_path: Path) -> None:
    count_views(db, tmp_path)


@pytest.mark.postgres
def test_views_and_versions_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    database = Database(pg_url)
    database.upgrade()
    try:
        count_views(database, tmp_path)
        # two administrators upload different versions at the same moment: both are kept
        libraries = [make_library(database, tmp_path / f"p{i}", None) for i in range(2)]
        start = threading.Barrier(2)
        results: list[dict[str, object]] = []

        def upload(i: int) -> None:
            start.wait()
            results.append(
                libraries[i].store(residence_definition(summary=f"版本{i}。"), "upload", f"a{i}")
            )

        threads = [threading.Thread(target=upload, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r["version"] for r in results) == [2, 3]  # type: ignore[type-var]
        assert [v["version"] for v in libraries[0].versions(FORM)] == [3, 2, 1]
    finally:
        database.dispose()

"""``banshi forms validate | upload | render``: an administrator's tools for the samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from forms_builders import FORMS_DIR, RESIDENCE, residence_definition

from banshi.cli import main


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"BANSHI_DATA_DIR": str(tmp_path / "data"), "BANSHI_ENV": "test"}


def test_validate_counts_the_shipped_forms(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["forms", "validate"], env=env)
    assert result.exit_code == 0, result.output
    assert f"forms: {len(list(FORMS_DIR.glob('*.yml')))} definitions" in result.stdout


def test_validate_names_each_bad_field_and_fails(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "forms"
    folder.mkdir()
    shutil.copy(RESIDENCE, folder)
    bad = residence_definition(department="nowhere")
    (folder / "bad.yml").write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    copy = residence_definition()
    (folder / "copy.yml").write_text(yaml.safe_dump(copy, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(main, ["forms", "validate", str(folder)], env=env)
    assert result.exit_code == 1
    assert "bad.yml department: 'nowhere' is not a department of the catalogue" in result.output
    assert (
        "residence-permit-application.yml id: 'residence-permit-application' "
        "is also used by copy.yml" in result.output
    )
    assert "2 form definition(s) refused" in result.output


def test_upload_stores_a_new_version_once(env: dict[str, str], tmp_path: Path) -> None:
    changed = tmp_path / "new.yml"
    changed.write_text(
        yaml.safe_dump(residence_definition(summary="新版说明。"), allow_unicode=True),
        encoding="utf-8",
    )
    runner = CliRunner()
    first = runner.invoke(main, ["forms", "upload", str(changed), "--by", "王管理"], env=env)
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "residence-permit-application: version 1 (created)"
    again = runner.invoke(main, ["forms", "upload", str(changed)], env=env)
    assert again.stdout.strip() == "residence-permit-application: version 1 (unchanged)"
    broken = tmp_path / "broken.yml"
    broken.write_text("id: broken-form\n", encoding="utf-8")
    refused = runner.invoke(main, ["forms", "upload", str(broken)], env=env)
    assert refused.exit_code == 1 and "broken.yml department: is missing" in refused.output

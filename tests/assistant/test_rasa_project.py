"""The Rasa project as assembled and trained from the main environment
(assistant/rasa_project.py): the catalogue's NLU data, the assembled folder, its fingerprint,
and training with a fake ``rasa`` executable (real Rasa is exercised by the e2e tests)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import build_settings

from assistant.api import action_token
from assistant.rasa_project import (
    PROJECT_SRC,
    QUESTION_WORDS,
    USERDICT,
    RasaProject,
    RasaUnavailable,
    catalogue_nlu,
    item_names,
)
from banshi.settings import SAMPLE_KB_DIR, Settings
from knowledge_base.source import Catalog


@pytest.fixture(scope="module")
def sample_names() -> dict[str, list[str]]:
    return item_names(SAMPLE_KB_DIR, Catalog.load(SAMPLE_KB_DIR))


def synonyms(nlu_yaml: str) -> tuple[dict[str, list[str]], list[str]]:
    """(item id -> synonym examples, lookup examples) of a generated catalogue.yml."""
    data = yaml.safe_load(nlu_yaml)
    assert data["version"] == "3.1"
    found: dict[str, list[str]] = {}
    lookup: list[str] = []
    for block in data["nlu"]:
        examples = [line[2:] for line in block["examples"].splitlines()]
        assert all(line.startswith("- ") for line in block["examples"].splitlines())
        if "synonym" in block:
            found[block["synonym"]] = examples
        else:
            assert block["lookup"] == "service_item"
            lookup = examples
    return found, lookup


# == the catalogue's NLU data ===================================================================
def test_item_names_are_the_names_residents_use(sample_names: dict[str, list[str]]) -> None:
    assert sample_names["residence-permit"] == [
        "居住证申领",
        "办居住证",
        "暂住证",
        "外地人办居住证",
        "居住证首次申领",
    ]
    # a title with a bracket also counts without it
    assert sample_names["hukou-newborn"][:3] == [
        "新生儿出生登记（上户口）",
        "新生儿出生登记",
        "上户口",
    ]
    assert set(sample_names) == set(Catalog.load(SAMPLE_KB_DIR).items)


def test_names_that_are_questions_are_left_out(sample_names: dict[str, list[str]]) -> None:
    every = [n for ns in sample_names.values() for n in ns]
    for asked in (
        "居住证怎么办",
        "社保卡怎么办",
        "离婚要带什么",
        "补身份证要多久",
        "被辞退了能领失业金吗",
    ):
        assert asked not in every
    assert not [n for n in every if any(q in n for q in QUESTION_WORDS)]


def test_names_asking_how_much_or_whether_are_questions_too(
    sample_names: dict[str, list[str]],
) -> None:
    every = {n for ns in sample_names.values() for n in ns}
    assert every.isdisjoint(
        {"注册公司要多少钱", "过户要交多少税", "怀孕了要办啥证", "查房子有没有抵押"}
    )


def test_catalogue_nlu_is_valid_yaml_with_a_synonym_block_per_item(
    sample_names: dict[str, list[str]],
) -> None:
    text = catalogue_nlu(sample_names)
    assert text.startswith("# Generated from the catalogue by `banshi rasa train`; do not edit.\n")
    found, lookup = synonyms(text)
    assert list(found) == list(sample_names)  # catalogue order, one block per item
    assert found["residence-permit"] == sample_names["residence-permit"]
    assert found["marriage-registration"][:3] == ["结婚登记", "领结婚证", "办结婚证"]
    assert lookup == sorted({n for ns in sample_names.values() for n in ns})


def test_a_name_of_two_items_is_no_synonym_but_stays_in_the_lookup(
    sample_names: dict[str, list[str]],
) -> None:
    # 住房公积金提取（租房） and （购房） are both 住房公积金提取 without the bracket
    found, lookup = synonyms(catalogue_nlu(sample_names))
    assert "住房公积金提取" in sample_names["hpf-withdraw-rent"]
    assert "住房公积金提取" in sample_names["hpf-withdraw-purchase"]
    assert "住房公积金提取" not in found["hpf-withdraw-rent"]
    assert "住房公积金提取" not in found["hpf-withdraw-purchase"]
    assert "住房公积金提取（租房）" in found["hpf-withdraw-rent"]
    assert "住房公积金提取" in lookup


def test_catalogue_nlu_by_hand() -> None:
    names = {
        "social-card-apply": ["社会保障卡申领", "社保卡"],
        "social-card-lost": ["社会保障卡挂失与补换", "社保卡"],
        "only-shared": ["社保卡"],
    }
    found, lookup = synonyms(catalogue_nlu(names))
    assert found == {
        "social-card-apply": ["社会保障卡申领"],
        "social-card-lost": ["社会保障卡挂失与补换"],
    }  # an item whose names are all shared gets no block at all
    assert lookup == sorted(["社会保障卡申领", "社会保障卡挂失与补换", "社保卡"])


# == assembling ==================================================================================
@pytest.fixture
def project_settings(tmp_path: Path) -> Settings:
    return build_settings(tmp_path / "data", rasa_venv=tmp_path / "venv-rasa", port=8123)


def test_assemble_writes_the_project(project_settings: Settings) -> None:
    build = RasaProject(project_settings).assemble()
    assert build == project_settings.rasa_dir / "project"
    for part in (
        "config.yml",
        "domain.yml",
        "credentials.yml",
        "endpoints.yml",
        "data/rules.yml",
        "data/stories.yml",
        "data/nlu/services.yml",
        "data/nlu/catalogue.yml",
        "jieba/userdict.txt",
        "tests/test_stories.yml",
    ):
        assert (build / part).is_file(), part
    assert (build / "domain.yml").read_bytes() == (PROJECT_SRC / "domain.yml").read_bytes()
    assert (build / "jieba" / "userdict.txt").read_bytes() == USERDICT.read_bytes()
    found, _ = synonyms((build / "data" / "nlu" / "catalogue.yml").read_text(encoding="utf-8"))
    assert "暂住证" in found["residence-permit"]
    endpoints = yaml.safe_load((build / "endpoints.yml").read_text(encoding="utf-8"))
    assert endpoints["action_endpoint"] == {
        "url": "http://127.0.0.1:8123/api/rasa/actions",
        "token": action_token(project_settings.secret_key),
    }
    assert endpoints["tracker_store"]["type"] == "SQL"
    assert endpoints["tracker_store"]["db"] == str(
        (project_settings.rasa_dir / "tracker.db").resolve()
    )
    assert yaml.safe_load((build / "credentials.yml").read_text()) == {"rest": {}}
    assert not (project_settings.rasa_dir / "project.new").exists()


def test_assemble_replaces_the_project_whole(project_settings: Settings) -> None:
    rasa = RasaProject(project_settings)
    build = rasa.assemble()
    (build / "data" / "nlu" / "left-over.yml").write_text("nlu: []\n")
    rasa.assemble("http://10.0.0.5:9000/api/rasa/actions")
    assert not (build / "data" / "nlu" / "left-over.yml").exists()
    endpoints = yaml.safe_load((build / "endpoints.yml").read_text(encoding="utf-8"))
    assert endpoints["action_endpoint"]["url"] == "http://10.0.0.5:9000/api/rasa/actions"


def test_fingerprint_is_stable_and_ignores_run_time_files(project_settings: Settings) -> None:
    rasa = RasaProject(project_settings)
    rasa.assemble()
    first = rasa.fingerprint()
    rasa.assemble("http://10.0.0.5:9000/api/rasa/actions")  # endpoints differ: same model
    assert rasa.fingerprint() == first
    assert len(first) == 16 and int(first, 16) >= 0


def test_fingerprint_changes_with_a_training_file(project_settings: Settings) -> None:
    rasa = RasaProject(project_settings)
    build = rasa.assemble()
    before = rasa.fingerprint()
    with (build / "data" / "rules.yml").open("a", encoding="utf-8") as f:
        f.write("# one more line\n")
    assert rasa.fingerprint() != before
    rasa.assemble()
    assert rasa.fingerprint() == before


def test_fingerprint_changes_with_the_catalogue(project_settings: Settings, tmp_path: Path) -> None:
    before = RasaProject(project_settings)
    before.assemble()
    source = tmp_path / "kb"
    shutil.copytree(SAMPLE_KB_DIR, source)
    guide = source / "guides" / "residence-permit.md"
    guide.write_text(
        guide.read_text(encoding="utf-8").replace(
            "aliases: [办居住证,", "aliases: [办居住卡, 办居住证,"
        ),
        encoding="utf-8",
    )
    edited = RasaProject(
        build_settings(tmp_path / "other", rasa_venv=tmp_path / "venv-rasa", kb_source_dir=source)
    )
    build = edited.assemble()
    found, _ = synonyms((build / "data" / "nlu" / "catalogue.yml").read_text(encoding="utf-8"))
    assert found["residence-permit"][:2] == ["居住证申领", "办居住卡"]
    assert edited.fingerprint() != before.fingerprint()


# == training with a fake rasa ====================================================================
TRAIN_OK = """#!/bin/sh
echo "$*" >> "{calls}"
echo "cwd=$(pwd) telemetry=$RASA_TELEMETRY_ENABLED" >> "{calls}"
out=""; name=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift ;;
    --fixed-model-name) name="$2"; shift ;;
  esac
  shift
done
printf 'a trained model' > "$out/$name.tar.gz"
"""
TRAIN_FAILS = """#!/bin/sh
echo "$*" >> "{calls}"
for a in "$@"; do last="$a"; done
printf 'half' > "{models}/$last.tar.gz"
echo "ValueError: something in the data" >&2
exit 1
"""
TRAIN_SILENT = """#!/bin/sh
echo "$*" >> "{calls}"
exit 0
"""


def fake_rasa(settings: Settings, script: str) -> Path:
    """Installs ``bin/rasa`` in settings.rasa_venv; returns the file that counts its runs."""
    calls = settings.rasa_venv / "calls.log"
    rasa_bin = settings.rasa_venv / "bin" / "rasa"
    rasa_bin.parent.mkdir(parents=True, exist_ok=True)
    models = (settings.rasa_dir / "models").resolve()
    rasa_bin.write_text(script.format(calls=calls, models=models))
    rasa_bin.chmod(rasa_bin.stat().st_mode | stat.S_IXUSR)
    return calls


def runs(calls: Path) -> list[str]:
    if not calls.exists():
        return []
    return [line for line in calls.read_text().splitlines() if line.startswith("train ")]


def previous_model(settings: Settings) -> Path:
    models = settings.rasa_dir / "models"
    models.mkdir(parents=True)
    old = models / "0123456789abcdef.tar.gz"
    old.write_bytes(b"the model in use")
    (models / "CURRENT").write_text(old.name)
    return old


def test_train_builds_names_and_points_at_the_model(project_settings: Settings) -> None:
    calls = fake_rasa(project_settings, TRAIN_OK)
    rasa = RasaProject(project_settings)
    model, trained = rasa.train()
    fp = rasa.fingerprint()
    assert trained is True
    assert model == project_settings.rasa_dir / "models" / f"{fp}.tar.gz"
    assert model.read_bytes() == b"a trained model"
    assert (project_settings.rasa_dir / "models" / "CURRENT").read_text() == f"{fp}.tar.gz"
    assert rasa.current_model() == model
    assert rasa.require_model() == model
    assert list((project_settings.rasa_dir / "models").glob("training-*")) == []
    [args] = runs(calls)
    models = (project_settings.rasa_dir / "models").resolve()
    assert args == (
        "train --domain domain.yml --config config.yml --data data "
        f"--out {models} --fixed-model-name training-{fp}"
    )
    # run in the assembled project, with telemetry off
    assert f"cwd={rasa.build.resolve()} telemetry=false" in calls.read_text()


def test_train_again_without_changes_does_not_run_rasa(project_settings: Settings) -> None:
    calls = fake_rasa(project_settings, TRAIN_OK)
    rasa = RasaProject(project_settings)
    model, _ = rasa.train()
    (project_settings.rasa_dir / "models" / "CURRENT").write_text("something-else.tar.gz")
    again, trained = rasa.train()
    assert (again, trained) == (model, False)
    assert len(runs(calls)) == 1
    assert rasa.current_model() == model  # pointed at it again
    forced, trained = rasa.train(force=True)
    assert (forced, trained) == (model, True)
    assert len(runs(calls)) == 2


def test_failed_training_keeps_the_model_in_use(project_settings: Settings) -> None:
    calls = fake_rasa(project_settings, TRAIN_FAILS)
    old = previous_model(project_settings)
    rasa = RasaProject(project_settings)
    with pytest.raises(RuntimeError) as exc:
        rasa.train()
    assert str(exc.value) == "rasa train failed (exit 1); still serving 0123456789abcdef.tar.gz"
    assert len(runs(calls)) == 1
    assert (project_settings.rasa_dir / "models" / "CURRENT").read_text() == old.name
    assert rasa.current_model() == old
    assert old.read_bytes() == b"the model in use"
    # the half-written model is not left behind
    assert sorted(p.name for p in (project_settings.rasa_dir / "models").iterdir()) == [
        "0123456789abcdef.tar.gz",
        "CURRENT",
    ]


def test_training_that_writes_no_model_fails(project_settings: Settings) -> None:
    fake_rasa(project_settings, TRAIN_SILENT)
    rasa = RasaProject(project_settings)
    with pytest.raises(
        RuntimeError, match=r"^rasa train failed \(exit 0\); still serving no model$"
    ):
        rasa.train()
    assert rasa.current_model() is None


def test_training_keeps_two_spare_models(project_settings: Settings) -> None:
    fake_rasa(project_settings, TRAIN_OK)
    models = project_settings.rasa_dir / "models"
    models.mkdir(parents=True)
    for age, name in enumerate(["newest", "newer", "older", "oldest"]):
        m = models / f"{name}.tar.gz"
        m.write_bytes(b"old")
        os.utime(m, (1_700_000_000 - age * 3600, 1_700_000_000 - age * 3600))
    model, _ = RasaProject(project_settings).train()
    assert sorted(p.name for p in models.glob("*.tar.gz")) == sorted(
        [model.name, "newest.tar.gz", "newer.tar.gz"]
    )


# == what needs Rasa ===============================================================================
def test_no_rasa_installed(project_settings: Settings) -> None:
    rasa = RasaProject(project_settings)
    with pytest.raises(
        RasaUnavailable, match=r"Rasa is not installed at .*venv-rasa; run scripts/setup-rasa"
    ):
        rasa.require_model()
    with pytest.raises(RasaUnavailable):
        rasa.train()


def test_no_model_trained(project_settings: Settings) -> None:
    fake_rasa(project_settings, TRAIN_OK)
    rasa = RasaProject(project_settings)
    with pytest.raises(RasaUnavailable, match=r"no trained Rasa model; run `banshi rasa train`"):
        rasa.require_model()
    # a pointer at a model that is gone is no model either
    (project_settings.rasa_dir / "models").mkdir(parents=True)
    (project_settings.rasa_dir / "models" / "CURRENT").write_text("gone.tar.gz")
    assert rasa.current_model() is None
    with pytest.raises(RasaUnavailable):
        rasa.require_model()


def test_run_command_serves_the_current_model(project_settings: Settings) -> None:
    fake_rasa(project_settings, TRAIN_OK)
    old = previous_model(project_settings)
    cmd = RasaProject(project_settings).run_command(5055, "http://127.0.0.1:8123/api/rasa/actions")
    assert cmd[0] == str((project_settings.rasa_venv / "bin" / "rasa").absolute())
    assert cmd[1:] == [
        "run",
        "--enable-api",
        "--model",
        str(old.resolve()),
        "--endpoints",
        "endpoints.yml",
        "--credentials",
        "credentials.yml",
        "--interface",
        "127.0.0.1",
        "--port",
        "5055",
    ]
    assert (project_settings.rasa_dir / "project" / "endpoints.yml").is_file()


def test_env_turns_telemetry_off(project_settings: Settings) -> None:
    env: dict[str, Any] = RasaProject(project_settings).env()
    assert env["RASA_TELEMETRY_ENABLED"] == "false"
    assert env["PATH"] == os.environ["PATH"]

"""The ``banshi`` command: database upgrade and staff accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from banshi.auth import authenticate
from banshi.cli import main
from banshi.db import Database
from banshi.errors import NotFound, Unauthorized
from banshi.settings import Settings, get_settings


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    get_settings.cache_clear()
    yield {"BANSHI_DATA_DIR": str(tmp_path / "data"), "BANSHI_ENV": "test"}
    get_settings.cache_clear()


def test_db_upgrade(env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert "database at head" in result.stdout
    assert (tmp_path / "data" / "banshi.db").exists()
    again = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert again.exit_code == 0


def test_users_add_with_password_from_stdin(env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["users", "add", "liuyang", "--role", "supervisor", "--password-stdin"],
        input="liuyang-pass-8\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "created supervisor liuyang" in result.stdout
    s = Settings(data_dir=tmp_path / "data")
    db = Database(s.resolved_database_url)
    try:
        with db.session() as session:
            assert authenticate(session, "liuyang", "liuyang-pass-8").role == "supervisor"
    finally:
        db.dispose()


def test_users_add_if_missing_leaves_the_existing_user(env: dict[str, str]) -> None:
    args = ["users", "add", "liuyang", "--role", "admin", "--password-stdin"]
    assert CliRunner().invoke(main, args, input="first-password\n", env=env).exit_code == 0
    again = CliRunner().invoke(main, [*args, "--if-missing"], input="second-password\n", env=env)
    assert again.exit_code == 0
    assert "user liuyang exists" in again.stdout


def test_users_password_replaces_the_old_one(env: dict[str, str], tmp_path: Path) -> None:
    add = ["users", "add", "admin", "--role", "admin", "--password-stdin"]
    assert CliRunner().invoke(main, add, input="first-password\n", env=env).exit_code == 0
    change = ["users", "password", "admin", "--password-stdin"]
    result = CliRunner().invoke(main, change, input="rotated-password\n", env=env)
    assert result.exit_code == 0, result.output
    assert "password of admin changed" in result.stdout
    db = Database(Settings(data_dir=tmp_path / "data").resolved_database_url)
    try:
        with db.session() as session:
            assert authenticate(session, "admin", "rotated-password").role == "admin"
            with pytest.raises(Unauthorized):
                authenticate(session, "admin", "first-password")
    finally:
        db.dispose()
    nobody = CliRunner().invoke(main, ["users", "password", "nobody", "--password-stdin"],
                                input="whatever-password\n", env=env)  # fmt: skip
    assert nobody.exit_code != 0
    assert isinstance(nobody.exception, NotFound)
    assert nobody.exception.message == "没有这个用户。"


def test_users_add_refuses_a_short_password(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main, ["users", "add", "x", "--role", "agent", "--password-stdin"], input="short\n", env=env
    )
    assert result.exit_code != 0
    assert "8" in str(result.exception)


def test_users_add_refuses_an_unknown_role(env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        main,
        ["users", "add", "x", "--role", "root", "--password-stdin"],
        input="long-password\n",
        env=env,
    )
    assert result.exit_code == 2
    assert "root" in result.stderr

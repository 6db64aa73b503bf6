"""Settings: placeholder secrets are refused in production only; derived paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from banshi.settings import Settings, get_settings


@pytest.mark.parametrize(
    "secret", ["change-me", "CHANGE-ME", " changeme ", "secret", "", "dev-secret"]
)
def test_production_refuses_a_placeholder_secret(secret: str) -> None:
    with pytest.raises(ValidationError, match="BANSHI_SECRET_KEY must be set"):
        Settings(env="production", secret_key=secret)


def test_production_accepts_a_real_secret() -> None:
    s = Settings(env="production", secret_key="k7Hq2-real-production-secret")
    assert s.env == "production"
    assert s.secret_key == "k7Hq2-real-production-secret"


@pytest.mark.parametrize("env", ["development", "test"])
def test_placeholder_secret_is_accepted_outside_production(env: str) -> None:
    s = Settings(env=env, secret_key="change-me")
    assert s.secret_key == "change-me"


def test_default_database_is_sqlite_in_the_data_directory(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "d")
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'd' / 'banshi.db').resolve()}"
    assert s.kb_index_dir == tmp_path / "d" / "kb_index"


def test_explicit_database_url_wins(tmp_path: Path) -> None:
    url = "postgresql+psycopg://banshi@db.internal/banshi"
    assert Settings(data_dir=tmp_path, database_url=url).resolved_database_url == url


def test_settings_are_read_from_banshi_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BANSHI_DATA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("BANSHI_KB_ENCODER", "hashing")
    monkeypatch.setenv("BANSHI_TOKEN_TTL_HOURS", "3")
    s = get_settings()
    assert s.data_dir == tmp_path / "from-env"
    assert s.kb_encoder == "hashing"
    assert s.token_ttl_hours == 3


def test_production_placeholder_secret_from_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BANSHI_ENV", "production")
    with pytest.raises(ValidationError, match="BANSHI_SECRET_KEY"):
        get_settings()


@pytest.mark.parametrize(
    "field, value",
    [
        ("token_ttl_hours", 0),
        ("kb_answer_threshold", 1.5),
        ("kb_max_question_chars", 5),
        ("env", "staging"),
    ],
)
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})  # type: ignore[arg-type]

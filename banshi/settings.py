"""One settings class, read from the environment (prefix ``BANSHI_``) once at start-up."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev-secret"}
SAMPLE_KB_DIR = Path(__file__).resolve().parent.parent / "knowledge_base" / "sample"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANSHI_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    # Empty means SQLite in the data directory; PostgreSQL: postgresql+psycopg://user:pw@host/db
    database_url: str = ""
    secret_key: str = "change-me"
    token_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)

    host: str = "127.0.0.1"
    port: int = 8000

    # Knowledge base
    kb_source_dir: Path = SAMPLE_KB_DIR
    # "use-m3" (default, embedded), "e5-small" (embedded, needs the e5 extra),
    # "st:/path/to/model" (sentence-transformers from a local directory), "hashing" (tests only)
    kb_encoder: str = "use-m3"
    kb_answer_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    kb_max_question_chars: int = Field(default=500, ge=20)

    # Chat (web widget, WeChat) and the Rasa server that understands it
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_timeout_s: float = Field(default=4.0, gt=0)
    rasa_venv: Path = SAMPLE_KB_DIR.parent.parent / ".venv-rasa"  # made by scripts/setup-rasa
    chat_max_chars: int = Field(default=300, ge=20)  # longer messages are cut, with a notice
    chat_rate_per_minute: int = Field(default=20, ge=1)  # per resident; a flood waits alone
    # Links in chat answers (guides); empty: relative links, fine for the web widget
    public_url: str = ""

    # WeChat Official Account (公众号); an empty token leaves the webhook switched off
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_aes_key: str = ""  # 43 characters; set it to accept safe-mode (encrypted) messages
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_reply_deadline_s: float = Field(default=4.0, gt=0, lt=5)  # WeChat waits 5 s

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'banshi.db').resolve()}"

    @property
    def rasa_dir(self) -> Path:
        """Assembled Rasa project, trained models and Rasa's tracker store."""
        return self.data_dir / "rasa"

    @property
    def kb_index_dir(self) -> Path:
        return self.data_dir / "kb_index"

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> Settings:
        if self.env == "production" and self.secret_key.strip().lower() in PLACEHOLDER_SECRETS:
            raise ValueError(
                "BANSHI_SECRET_KEY must be set to a real secret in production "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()

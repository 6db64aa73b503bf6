"""One settings class, read from the environment (prefix ``BANSHI_``) once at start-up."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "change-me", "changeme", "secret", "dev-secret"}
SAMPLE_KB_DIR = Path(__file__).resolve().parent.parent / "knowledge_base" / "sample"
BRIDGE_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
BRIDGE_SECRET_MIN = 16  # outside development and test


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's message must not echo secrets into logs
    model_config = SettingsConfigDict(
        env_prefix="BANSHI_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

    env: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path("data")
    # Empty means SQLite in the data directory; PostgreSQL: postgresql+psycopg://user:pw@host/db
    database_url: str = ""
    secret_key: str = "change-me"
    token_ttl_hours: int = Field(default=12, ge=1, le=24 * 30)

    host: str = "127.0.0.1"
    port: int = 8000

    # Production topology (banshi/production.py, docker/). Redis carries live events (queue
    # calls, agent events, chat pushes) between API processes, shared rate-limit counters and
    # Rasa's lock store; empty: one process, all of that in memory.
    redis_url: str = ""
    # "auto": each process brings the schema to head at start (one machine, one process);
    # "check": migrations are run once per deploy (`banshi db upgrade`) and a process whose
    # database is behind its code refuses to start, saying so
    migrate: Literal["auto", "check"] = "auto"
    # Proxies whose X-Forwarded-For names the client (nginx in front); comma-separated IPs
    trusted_proxies: str = "127.0.0.1"
    # Request limits (banshi/limits.py): the largest body on routes without a larger budget
    # of their own, and the per-client rate limits: "on", "off" or a multiplier ("2", "0.5")
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    rate_limits: str = Field(default="on", pattern=r"^(on|off|[0-9]+(\.[0-9]+)?)$")

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
    # Rasa's tracker store (conversations): a SQLAlchemy URL, postgresql://… in production
    # so that every Rasa server sees every conversation; empty: SQLite in data/rasa/
    rasa_tracker_url: str = ""
    chat_max_chars: int = Field(default=300, ge=20)  # longer messages are cut, with a notice
    chat_rate_per_minute: int = Field(default=20, ge=1)  # per resident; a flood waits alone
    # Links in chat answers (guides); empty: relative links, fine for the web widget
    public_url: str = ""

    # When people answer chats: "centre" (the opening hours in centre.yml; outside them a
    # request for a person becomes a ticket) or "always" (a hotline staffed day and night)
    agent_hours: Literal["centre", "always"] = "centre"

    # WeChat Official Account (公众号); an empty token leaves the webhook switched off
    wechat_token: str = ""
    wechat_app_id: str = ""
    wechat_app_secret: str = ""
    wechat_aes_key: str = ""  # 43 characters; set it to accept safe-mode (encrypted) messages
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_reply_deadline_s: float = Field(default=4.0, gt=0, lt=5)  # WeChat waits 5 s

    # Ticket bridge webhooks (JSON in the environment). Outgoing:
    # [{"name": "city12345", "url": "https://…", "secret": "…"}]; incoming, source -> secret:
    # {"city12345": "…"}. Both directions sign with HMAC-SHA256 (ticket_bridge/signing.py).
    bridge_targets: list[dict[str, str]] = []
    bridge_inbound_secrets: dict[str, str] = {}

    # Lobby kiosk ticket printers (kiosk/printing/connection.py): one URL for every kiosk,
    # or one per kiosk id (the kiosk page's ?kiosk=K01), "*" for the kiosks not listed:
    # "K01=network://10.0.0.21,K02=usb://0x0416:0x5011,*=network://10.0.0.30"; without "*"
    # a kiosk not listed has none (its tickets are issued and shown, not printed). A URL is
    # network://HOST[:9100], usb://0x0416:0x5011 (vendor:product, lsusb),
    # serial:///dev/ttyUSB0?baudrate=9600, file:///path/out.bin (each job's raw ESC/POS
    # bytes appended to the file: captures output without a printer) or dummy:// (in
    # memory, nothing printed). Options: ?timeout=SECONDS (default 3), ?status=off for a
    # printer that cannot answer DLE EOT. Read at start: restart the API processes after
    # a change.
    kiosk_printer: str = "dummy://"
    kiosk_paper_mm: Literal[58, 80] = 80  # 58 mm: 32 columns (16 Chinese), 80 mm: 48 (24)

    # Form samples (样表): the CUPS queue of the kiosks' A4 printer (`lpstat -p` lists them),
    # one for all ("HallA4") or per kiosk ("K01=HallA4,*=DeskA4"); empty: no A4 printer,
    # residents are pointed to the QR code. And the command that prints, and where CUPS is
    forms_a4_printer: str = ""
    forms_lp_command: str = "lp"
    forms_cups_server: str = ""  # host[:port] of the CUPS server; empty: the machine's own
    forms_refresh_s: float = Field(default=2.0, gt=0)  # how soon an upload reaches every kiosk

    # Voice hotline (assistant/voice): where Asterisk's AudioSocket() connects (host:port;
    # empty: no telephone line, the web call and `banshi voice call` still work), a Vosk
    # model directory for speech (empty: keys only), the token the PBX's CURL() calls carry
    # (empty: only the PBX on this machine, 127.0.0.1, may call them), and how many calls at once
    voice_audiosocket: str = ""
    vosk_model: str = ""
    voice_pbx_token: str = ""
    voice_max_calls: int = Field(default=30, ge=1, le=500)

    @field_validator("kiosk_printer")
    @classmethod
    def _check_kiosk_printer(cls, value: str) -> str:
        from kiosk.printing.connection import parse_printer_map  # no escpos import

        parse_printer_map(value)  # its ValueError names BANSHI_KIOSK_PRINTER and the entry
        return value

    @field_validator("forms_a4_printer")
    @classmethod
    def _check_a4_printer(cls, value: str) -> str:
        from kiosk.forms.printing import parse_queues  # no cairo or CUPS import

        parse_queues(value)  # its ValueError names BANSHI_FORMS_A4_PRINTER
        return value

    @field_validator("kiosk_paper_mm", mode="before")
    @classmethod
    def _paper_from_env(cls, value: object) -> object:
        # the environment says "58"; Literal[58, 80] alone would refuse the string
        if str(value).strip() not in ("58", "80"):
            raise ValueError(f"BANSHI_KIOSK_PAPER_MM must be 58 or 80, not {value!r}")
        return int(str(value).strip())

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'banshi.db').resolve()}"

    @property
    def rasa_dir(self) -> Path:
        """Assembled Rasa project, trained models and Rasa's tracker store."""
        return self.data_dir / "rasa"

    @property
    def forms_cache_dir(self) -> Path:
        """Rendered form images, one file per form version and kind."""
        return self.data_dir / "form_images"

    @property
    def voice_dir(self) -> Path:
        """The hotline's rendered prompts (tts/) and callers' recordings (recordings/)."""
        return self.data_dir / "voice"

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

    @model_validator(mode="after")
    def _check_bridge(self) -> Settings:
        strict = self.env not in ("development", "test")
        seen: set[str] = set()
        for i, target in enumerate(self.bridge_targets):
            where = f"BANSHI_BRIDGE_TARGETS[{i}]"
            if set(target) != {"name", "url", "secret"}:
                raise ValueError(f"{where} must have exactly the keys name, url and secret")
            name = target["name"]
            _check_bridge_name(f"{where}.name", name)
            if name in seen:
                raise ValueError(f"{where}.name: {name!r} is given twice")
            seen.add(name)
            url = urlsplit(target["url"])
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"{where}.url must be an http(s) URL, not {target['url']!r}")
            _check_bridge_secret(f"{where}.secret", target["secret"], strict)
        for source, secret in self.bridge_inbound_secrets.items():
            _check_bridge_name(f"BANSHI_BRIDGE_INBOUND_SECRETS key {source!r}", source)
            _check_bridge_secret(f"BANSHI_BRIDGE_INBOUND_SECRETS[{source!r}]", secret, strict)
        return self


def _check_bridge_name(where: str, name: str) -> None:
    if not BRIDGE_NAME.fullmatch(name):
        raise ValueError(f"{where}: {name!r} must match {BRIDGE_NAME.pattern}")


def _check_bridge_secret(where: str, secret: str, strict: bool) -> None:
    # never echo the secret itself into an error message (logs, CI output)
    if not secret.strip():
        raise ValueError(f"{where} must not be empty")
    if strict and len(secret) < BRIDGE_SECRET_MIN:
        raise ValueError(f"{where} must be at least {BRIDGE_SECRET_MIN} characters in production")


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Staff accounts and bearer tokens.

Passwords are hashed with scrypt (stdlib). Tokens are HMAC-signed, expiring, and carry the
role, so checking a request needs no database round trip. Roles are ordered: an admin may do
what a supervisor may, a supervisor what an agent may.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from banshi.db import Base, UtcDateTime, now_utc
from banshi.errors import BanshiError, Conflict, Forbidden, NotFound, Unauthorized

Role = Literal["agent", "supervisor", "admin"]
ROLE_RANK: dict[str, int] = {"agent": 1, "supervisor": 2, "admin": 3}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=now_utc)


@dataclass(frozen=True)
class Principal:
    username: str
    role: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


def create_user(
    session: Session, username: str, password: str, role: str, display_name: str = ""
) -> User:
    if role not in ROLE_RANK:
        raise BanshiError("角色无效。", f"role must be one of {sorted(ROLE_RANK)}")
    if len(password) < 8:
        raise BanshiError("密码至少8位。", "password must have at least 8 characters")
    if session.scalar(select(User).where(User.username == username)):
        raise Conflict("该用户名已存在。", f"user {username!r} exists")
    user = User(
        username=username,
        role=role,
        display_name=display_name or username,
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> None:
    """A new password for an existing account (rotation, a forgotten password)."""
    if len(password) < 8:
        raise BanshiError("密码至少8位。", "password must have at least 8 characters")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound("没有这个用户。", f"no user {username!r}")
    user.password_hash = hash_password(password)


def authenticate(session: Session, username: str, password: str) -> Principal:
    user = session.scalar(select(User).where(User.username == username))
    # Verify against a dummy hash when the user is unknown, so timing does not reveal names.
    stored = user.password_hash if user else _DUMMY_HASH
    if not verify_password(password, stored) or user is None:
        raise Unauthorized("用户名或密码错误。", "bad credentials")
    return Principal(user.username, user.role)


_DUMMY_HASH = hash_password(secrets.token_hex(8))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(principal: Principal, secret: str, ttl_seconds: int) -> tuple[str, int]:
    expires = int(time.time()) + ttl_seconds
    payload = _b64(
        json.dumps({"sub": principal.username, "role": principal.role, "exp": expires}).encode()
    )
    sig = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{sig}", expires


def read_token(token: str, secret: str) -> Principal:
    try:
        payload, sig = token.split(".")
        expected = _b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            raise ValueError("signature")
        data = json.loads(_unb64(payload))
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        raise Unauthorized("登录状态无效，请重新登录。", "invalid token") from exc
    if data.get("exp", 0) < time.time():
        raise Unauthorized("登录已过期，请重新登录。", "token expired")
    return Principal(str(data["sub"]), str(data["role"]))


def csrf_token(session_token: str, secret: str) -> str:
    """The CSRF token that goes with a session cookie: pages read it from the login reply and
    send it in a header, which a page of another site cannot do."""
    return hmac.new(secret.encode(), b"csrf:" + session_token.encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def require_rank(principal: Principal, role: str) -> None:
    if ROLE_RANK.get(principal.role, 0) < ROLE_RANK[role]:
        raise Forbidden("您没有执行此操作的权限。", f"requires role {role}")

"""FastAPI dependencies shared by every part's router."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from banshi.auth import Principal, csrf_token, read_token, require_rank
from banshi.db import Database
from banshi.errors import Forbidden, Unauthorized
from banshi.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    with db.session() as s:
        yield s


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[Session, Depends(get_session)]


SESSION_COOKIE = "banshi_session"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def current_principal(request: Request, settings: SettingsDep) -> Principal:
    """A bearer token (API clients) or the session cookie of the staff pages. With the
    cookie, a request that changes something must also carry the CSRF header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return read_token(token.strip(), settings.secret_key)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        raise Unauthorized("请先登录。", "missing bearer token or session cookie")
    principal = read_token(cookie, settings.secret_key)
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(cookie, settings.secret_key).encode()):
            raise Forbidden("页面已过期，请刷新后重试。", "missing or bad CSRF token")
    return principal


def require_role(role: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        require_rank(principal, role)
        return principal

    return check


AgentDep = Annotated[Principal, Depends(require_role("agent"))]
SupervisorDep = Annotated[Principal, Depends(require_role("supervisor"))]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]

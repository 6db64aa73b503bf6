"""FastAPI dependencies shared by every part's router."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from banshi.auth import Principal, read_token, require_rank
from banshi.db import Database
from banshi.errors import Unauthorized
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


def current_principal(request: Request, settings: SettingsDep) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("请先登录。", "missing bearer token")
    return read_token(token.strip(), settings.secret_key)


def require_role(role: str) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        require_rank(principal, role)
        return principal

    return check


AdminDep = Annotated[Principal, Depends(require_role("admin"))]

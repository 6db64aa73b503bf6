"""Log-in for staff (agents, supervisors, administrators)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from banshi.auth import authenticate, issue_token
from banshi.deps import SessionDep, SettingsDep

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    token: str
    role: str
    expires_at: int


@router.post("/login")
def login(body: LoginIn, session: SessionDep, settings: SettingsDep) -> LoginOut:
    principal = authenticate(session, body.username, body.password)
    token, expires = issue_token(principal, settings.secret_key, settings.token_ttl_hours * 3600)
    return LoginOut(token=token, role=principal.role, expires_at=expires)

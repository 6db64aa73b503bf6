"""Log-in for staff (agents, supervisors, administrators): a bearer token for API clients,
or (``cookie: true``) an HttpOnly session cookie plus a CSRF token for the staff pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from banshi.auth import Principal, User, authenticate, csrf_token, issue_token
from banshi.deps import SESSION_COOKIE, SessionDep, SettingsDep, current_principal

router = APIRouter(prefix="/api/auth", tags=["auth"])


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    cookie: bool = False


class LoginOut(BaseModel):
    token: str
    role: str
    expires_at: int
    csrf: str = ""
    display_name: str = ""


@router.post("/login")
def login(
    body: LoginIn, request: Request, response: Response, session: SessionDep, settings: SettingsDep
) -> LoginOut:
    principal = authenticate(session, body.username, body.password)
    token, expires = issue_token(principal, settings.secret_key, settings.token_ttl_hours * 3600)
    name = session.scalar(select(User.display_name).where(User.username == principal.username))
    out = LoginOut(token=token, role=principal.role, expires_at=expires, display_name=name or "")
    if body.cookie:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=settings.token_ttl_hours * 3600,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https" or settings.env == "production",
            path="/",
        )
        out.token = ""  # the page keeps no token script could steal; the cookie is the login
        out.csrf = csrf_token(token, settings.secret_key)
    return out


@router.post("/logout")
def logout(response: Response) -> dict[str, bool]:
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/me")
def me(
    principal: Annotated[Principal, Depends(current_principal)],
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, str]:
    """Who is logged in; a page reloaded with its cookie gets its CSRF token again here."""
    name = session.scalar(select(User.display_name).where(User.username == principal.username))
    cookie = request.cookies.get(SESSION_COOKIE, "")
    return {
        "username": principal.username,
        "role": principal.role,
        "display_name": name or "",
        "csrf": csrf_token(cookie, settings.secret_key) if cookie else "",
    }

"""Staff accounts, password hashing, signed tokens and role ranks (unit and over the API)."""

from __future__ import annotations

import base64
import json
import time

import pytest
from fastapi.testclient import TestClient
from support import TEST_SECRET, bearer

from banshi.auth import (
    Principal,
    User,
    authenticate,
    create_user,
    hash_password,
    issue_token,
    read_token,
    require_rank,
    verify_password,
)
from banshi.db import Database
from banshi.errors import BanshiError, Conflict, Forbidden, Unauthorized


# -- passwords ---------------------------------------------------------------------------
def test_password_hash_round_trip() -> None:
    stored = hash_password("正确的密码-123")
    assert stored.startswith("scrypt$")
    assert "正确的密码" not in stored
    assert verify_password("正确的密码-123", stored) is True


def test_wrong_password_does_not_verify() -> None:
    stored = hash_password("correct horse battery")
    assert verify_password("correct horse battery!", stored) is False
    assert verify_password("", stored) is False


def test_same_password_hashes_differently_each_time() -> None:
    assert hash_password("same-password") != hash_password("same-password")


@pytest.mark.parametrize("stored", ["plain-text-password", "bcrypt$abc$def", "", "scrypt$only-two"])
def test_malformed_stored_hash_never_verifies(stored: str) -> None:
    assert verify_password("plain-text-password", stored) is False


# -- users -------------------------------------------------------------------------------
def test_create_user_and_authenticate(db: Database) -> None:
    with db.session() as s:
        user = create_user(s, "wangli", "window-A05-pass", "agent", display_name="王丽")
        assert user.id is not None
    with db.session() as s:
        principal = authenticate(s, "wangli", "window-A05-pass")
        row = s.query(User).filter_by(username="wangli").one()
    assert principal == Principal("wangli", "agent")
    assert row.display_name == "王丽"
    assert row.password_hash != "window-A05-pass"


def test_authenticate_rejects_wrong_password_and_unknown_user_alike(db: Database) -> None:
    with db.session() as s:
        create_user(s, "zhaomin", "zhaomin-pass-1", "admin")
    with db.session() as s:
        with pytest.raises(Unauthorized) as wrong:
            authenticate(s, "zhaomin", "zhaomin-pass-2")
        with pytest.raises(Unauthorized) as unknown:
            authenticate(s, "nobody", "zhaomin-pass-1")
    assert wrong.value.message == unknown.value.message == "用户名或密码错误。"


def test_duplicate_username_is_a_conflict(db: Database) -> None:
    with db.session() as s:
        create_user(s, "liqiang", "password-one", "agent")
    with pytest.raises(Conflict, match="liqiang"), db.session() as s:
        create_user(s, "liqiang", "password-two", "admin")
    with db.session() as s:
        assert s.query(User).filter_by(username="liqiang").one().role == "agent"


@pytest.mark.parametrize(
    "password, role, message",
    [
        ("short", "agent", "密码至少8位。"),
        ("long-enough-password", "root", "角色无效。"),
    ],
)
def test_create_user_validates_password_and_role(
    db: Database, password: str, role: str, message: str
) -> None:
    with pytest.raises(BanshiError) as exc, db.session() as s:
        create_user(s, "someone", password, role)
    assert exc.value.message == message
    with db.session() as s:
        assert s.query(User).count() == 0


# -- tokens ------------------------------------------------------------------------------
def test_valid_token_round_trip() -> None:
    token, expires = issue_token(Principal("chenjing", "supervisor"), TEST_SECRET, 3600)
    assert read_token(token, TEST_SECRET) == Principal("chenjing", "supervisor")
    assert expires > time.time()


def _forge_role(token: str, role: str) -> str:
    payload, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["role"] = role
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{forged}.{sig}"


def test_tampered_token_is_rejected() -> None:
    token, _ = issue_token(Principal("agent1", "agent"), TEST_SECRET, 3600)
    forged = _forge_role(token, "admin")
    assert forged != token
    with pytest.raises(Unauthorized) as exc:
        read_token(forged, TEST_SECRET)
    assert exc.value.message == "登录状态无效，请重新登录。"


def test_token_signed_with_another_secret_is_rejected() -> None:
    token, _ = issue_token(Principal("agent1", "agent"), "some-other-secret-value", 3600)
    with pytest.raises(Unauthorized, match="invalid token"):
        read_token(token, TEST_SECRET)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "不是令牌.签名", "....", "eyJ9.%%%"])
def test_garbage_tokens_are_rejected_not_crashing(garbage: str) -> None:
    with pytest.raises(Unauthorized):
        read_token(garbage, TEST_SECRET)


def test_expired_token_negative_ttl() -> None:
    token, expires = issue_token(Principal("agent1", "agent"), TEST_SECRET, -5)
    assert expires < time.time()
    with pytest.raises(Unauthorized) as exc:
        read_token(token, TEST_SECRET)
    assert exc.value.message == "登录已过期，请重新登录。"


def test_token_expires_when_the_clock_passes_its_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    token, expires = issue_token(Principal("agent1", "agent"), TEST_SECRET, 600)
    assert read_token(token, TEST_SECRET).username == "agent1"
    monkeypatch.setattr(time, "time", lambda: expires + 1)
    with pytest.raises(Unauthorized, match="token expired"):
        read_token(token, TEST_SECRET)


# -- role ranks --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "have, need, allowed",
    [
        ("agent", "agent", True),
        ("agent", "supervisor", False),
        ("agent", "admin", False),
        ("supervisor", "agent", True),
        ("supervisor", "admin", False),
        ("admin", "agent", True),
        ("admin", "supervisor", True),
        ("admin", "admin", True),
        ("root", "agent", False),
    ],
)
def test_role_ranks(have: str, need: str, allowed: bool) -> None:
    principal = Principal("x", have)
    if allowed:
        require_rank(principal, need)
    else:
        with pytest.raises(Forbidden) as exc:
            require_rank(principal, need)
        assert exc.value.message == "您没有执行此操作的权限。"
        assert exc.value.status_code == 403


# -- over the API ------------------------------------------------------------------------
def test_login_returns_a_token_that_reads_back(
    shared_hashing_kb, shared_client: TestClient
) -> None:
    with shared_hashing_kb.db.session() as s:
        create_user(s, "sunhua", "sunhua-pass-99", "supervisor")
    r = shared_client.post(
        "/api/auth/login", json={"username": "sunhua", "password": "sunhua-pass-99"}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["role"] == "supervisor"
    assert read_token(body["token"], TEST_SECRET) == Principal("sunhua", "supervisor")
    # 12 hours is the default lifetime
    assert 11 * 3600 < body["expires_at"] - time.time() <= 12 * 3600


def test_login_with_wrong_password_is_401_in_chinese(
    shared_hashing_kb, shared_client: TestClient
) -> None:
    with shared_hashing_kb.db.session() as s:
        create_user(s, "zhoujie", "zhoujie-pass-99", "admin")
    r = shared_client.post("/api/auth/login", json={"username": "zhoujie", "password": "guess-1"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "用户名或密码错误。"
    assert "token" not in r.json()


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "请先登录。"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "请先登录。"),
        ({"Authorization": "Bearer "}, "请先登录。"),
        ({"Authorization": "Bearer not-a-token"}, "登录状态无效，请重新登录。"),
    ],
)
def test_admin_route_without_a_valid_token_is_401(
    shared_client: TestClient, headers: dict[str, str], message: str
) -> None:
    r = shared_client.delete("/api/kb/documents/guide:residence-permit", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["message"] == message
    assert shared_client.get("/api/kb/documents/guide:residence-permit").status_code == 200


def test_expired_token_over_the_api_is_401(shared_client: TestClient) -> None:
    token, _ = issue_token(Principal("ghost", "admin"), TEST_SECRET, -1)
    r = shared_client.delete("/api/kb/documents/guide:residence-permit", headers=bearer(token))
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "登录已过期，请重新登录。"


@pytest.mark.parametrize("role", ["agent", "supervisor"])
def test_lower_roles_cannot_do_admin_things(
    token_for, shared_client: TestClient, role: str
) -> None:
    token = token_for(role)
    r = shared_client.delete("/api/kb/documents/guide:residence-permit", headers=bearer(token))
    assert r.status_code == 403
    assert r.json()["error"]["message"] == "您没有执行此操作的权限。"
    assert r.json()["error"]["code"] == "forbidden"
    # nothing was deleted
    assert shared_client.get("/api/kb/documents/guide:residence-permit").status_code == 200


def test_non_ascii_bearer_token_over_the_api_is_401_not_500(shared_hashing_kb) -> None:
    """GIVEN a client that sends a bearer token with non-ASCII bytes (a pasted 全角 character,
    a mangled copy from a chat message)
    WHEN it calls an admin route
    THEN it is told to log in again (401), like for any other invalid token."""
    from support import api_client

    with api_client(
        shared_hashing_kb.settings, shared_hashing_kb, raise_server_exceptions=False
    ) as client:
        r = client.delete(
            "/api/kb/documents/guide:residence-permit",
            headers={"Authorization": "Bearer abc.签名".encode()},
        )
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "登录状态无效，请重新登录。"

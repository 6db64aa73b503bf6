"""Errors that carry a Chinese message for residents and an English detail for operators.

Every part raises subclasses of :class:`BanshiError`; :func:`install_handlers` is the one
place that turns them (and malformed requests) into HTTP responses.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class BanshiError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, detail: str = "", **fields: Any) -> None:
        super().__init__(detail or message)
        self.message = message  # plain Chinese, safe to show a resident
        self.detail = detail  # plain English, for operators and logs
        self.fields = fields

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            body["detail"] = self.detail
        if self.fields:
            body["fields"] = self.fields
        return body


class NotFound(BanshiError):
    status_code = 404
    code = "not_found"


class Conflict(BanshiError):
    status_code = 409
    code = "conflict"


class Unauthorized(BanshiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(BanshiError):
    status_code = 403
    code = "forbidden"


class TooMany(BanshiError):
    status_code = 429
    code = "too_many_requests"


class Unavailable(BanshiError):
    status_code = 503
    code = "unavailable"


_HTTP_MESSAGES = {
    404: "您访问的页面或资源不存在。",
    405: "不支持这种请求方式。",
    413: "提交的内容太大了。",
}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(BanshiError)
    async def _banshi(_: Request, exc: BanshiError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s: %s", exc.code, exc.detail or exc.message)
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg", "")}
            for e in exc.errors()
        ]
        body = {
            "code": "invalid_request",
            "message": "请求内容不完整或格式不正确，请检查后重试。",
            "detail": "request validation failed",
            "fields": {"problems": problems},
        }
        return JSONResponse({"error": body}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = {
            "code": f"http_{exc.status_code}",
            "message": _HTTP_MESSAGES.get(exc.status_code, "请求未能完成，请稍后再试。"),
            "detail": str(exc.detail),
        }
        return JSONResponse({"error": body}, status_code=exc.status_code)

    @app.exception_handler(DBAPIError)
    async def _database(_: Request, exc: DBAPIError) -> JSONResponse:
        if not exc.connection_invalidated and not isinstance(exc, OperationalError):
            return _internal(exc)  # a bug (a constraint, bad SQL), not an outage
        # the database is restarting or unreachable: the client should retry shortly
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        body = {
            "code": "database_unavailable",
            "message": "系统正在恢复，请稍等几秒再试。",
            "detail": f"database unavailable ({type(exc.orig).__name__})",
        }
        return JSONResponse({"error": body}, status_code=503, headers={"Retry-After": "3"})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return _internal(exc)


def _internal(exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    body = {
        "code": "internal_error",
        "message": "系统暂时出了点问题，请稍后再试，或拨打12345热线。",
        "detail": type(exc).__name__,
    }
    return JSONResponse({"error": body}, status_code=500)

"""The FastAPI app factory: composes each part's router and start-up, maps errors, and
reports health. Heavy parts (the knowledge base) load in the lifespan, not at import."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from banshi.auth_api import router as auth_router
from banshi.db import Database
from banshi.errors import install_handlers
from banshi.health import HealthRegistry
from banshi.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, kb: Any = None) -> FastAPI:
    """``kb`` may be an already started KnowledgeBase (tests share one across apps)."""
    from assistant.api import router as chat_router
    from assistant.pages import router as chat_pages
    from assistant.wechat_api import router as wechat_router
    from knowledge_base.api import router as kb_router
    from knowledge_base.service import KnowledgeBase
    from knowledge_base.web import router as kb_pages

    settings = settings or get_settings()
    db = Database(settings.resolved_database_url)
    health = HealthRegistry()

    def database_check() -> dict[str, Any]:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "dialect": db.engine.dialect.name}

    health.register("database", database_check)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db.upgrade()
        knowledge = kb or KnowledgeBase(settings, db)
        app.state.kb = knowledge
        health.register("knowledge_base", knowledge.health)
        if not knowledge.ready:
            try:
                knowledge.start()
            except Exception:
                # Serve anyway: /healthz says what is wrong, answers say "not ready".
                log.exception("knowledge base failed to start")
        rasa = start_chat(app, settings, db, knowledge, health)
        yield
        await rasa.close()
        db.dispose()

    app = FastAPI(title="banshi 办事", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.health = health
    install_handlers(app)
    app.include_router(auth_router)
    app.include_router(kb_router)
    app.include_router(kb_pages)
    app.include_router(chat_router)
    app.include_router(chat_pages)
    app.include_router(wechat_router)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        report = health.report()
        return JSONResponse(report, status_code=503 if report["status"] == "down" else 200)

    return app


def start_chat(
    app: FastAPI, settings: Settings, db: Database, kb: Any, health: HealthRegistry
) -> Any:
    """The chat service and the Rasa custom actions, on the started knowledge base."""
    from assistant.actions import make_executor
    from assistant.chat import ChatService
    from assistant.rasa_client import RasaClient
    from assistant.skills import Deps
    from banshi.workcal import WorkCalendar

    calendar = WorkCalendar.from_config(kb.catalog.centre.get("opening"))
    deps = Deps(settings=settings, db=db, kb=kb, calendar=calendar)
    rasa = RasaClient(settings.rasa_url, settings.rasa_timeout_s)
    app.state.chat = ChatService(deps, rasa)
    app.state.actions = make_executor(deps)

    def rasa_check() -> dict[str, Any]:
        # Without Rasa the chat still answers from the knowledge base: degraded, not down.
        report = rasa.health_sync()
        if report["status"] != "ok":
            report["status"] = "degraded"
            report["effect"] = "chat answers from the knowledge base directly"
        return report

    health.register("rasa", rasa_check)
    return rasa

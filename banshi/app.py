"""The FastAPI app factory: composes each part's router and start-up, maps errors, and
reports health. Heavy parts (the knowledge base) load in the lifespan, not at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from banshi.auth_api import router as auth_router
from banshi.bus import RedisBus, make_bus
from banshi.db import Database
from banshi.errors import install_handlers
from banshi.health import HealthRegistry
from banshi.limits import install_limits
from banshi.pages import router as staff_pages
from banshi.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, kb: Any = None) -> FastAPI:
    """``kb`` may be an already started KnowledgeBase (tests share one across apps)."""
    from assistant.api import router as chat_router
    from assistant.pages import router as chat_pages
    from assistant.voice.api import mount_webcall
    from assistant.voice.api import router as voice_router
    from assistant.wechat_api import router as wechat_router
    from kiosk.api import router as kiosk_router
    from kiosk.display import router as display_router
    from kiosk.forms.api import router as forms_router
    from kiosk.pages import router as kiosk_pages
    from knowledge_base.api import router as kb_router
    from knowledge_base.service import KnowledgeBase
    from knowledge_base.web import router as kb_pages
    from ticket_bridge.api import router as bridge_router
    from ticket_bridge.inbound import router as inbound_router
    from ticket_bridge.pages import router as bridge_pages

    settings = settings or get_settings()
    db = Database(settings.resolved_database_url)
    health = HealthRegistry()

    def database_check() -> dict[str, Any]:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "dialect": db.engine.dialect.name}

    health.register("database", database_check)
    bus = make_bus(settings)  # live events; between processes over Redis (BANSHI_REDIS_URL)
    if isinstance(bus, RedisBus):
        health.register("bus", bus.health)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrate == "auto":
            db.upgrade()
        else:  # migrated once per deploy, before the processes start (banshi db upgrade)
            db.require_head()
        knowledge = kb or KnowledgeBase(settings, db)
        app.state.kb = knowledge
        health.register("knowledge_base", knowledge.health)
        if not knowledge.ready:
            try:
                knowledge.start()
            except Exception:
                # Serve anyway: /healthz says what is wrong, answers say "not ready".
                log.exception("knowledge base failed to start")
        bus.start()
        rasa = start_chat(app, settings, db, knowledge, health)
        background = start_bridge(app, settings, db, knowledge, health)
        lobby = start_kiosk(app, settings, db, knowledge, health)
        start_forms(app, settings, db, knowledge, health)
        phone_line = await start_voice(app, settings, db, knowledge, health)
        yield
        if phone_line is not None:
            phone_line.close()
            await phone_line.wait_closed()
        if lobby is not None:
            lobby.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lobby
        await background.stop()
        await rasa.close()
        await bus.close()
        db.dispose()

    app = FastAPI(title="banshi 办事", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.db = db
    app.state.health = health
    app.state.bus = bus
    install_handlers(app)
    install_limits(app, settings)  # body sizes and rate limits on every route
    app.include_router(auth_router)
    app.include_router(staff_pages)
    app.include_router(kb_router)
    app.include_router(kb_pages)
    app.include_router(chat_router)
    app.include_router(chat_pages)
    app.include_router(wechat_router)
    app.include_router(bridge_router)
    app.include_router(inbound_router)
    app.include_router(bridge_pages)
    app.include_router(kiosk_router)
    app.include_router(display_router)
    app.include_router(forms_router)
    app.include_router(kiosk_pages)
    app.include_router(voice_router)
    mount_webcall(app)

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

    # the chat's calendar says when people answer; tickets keep the centre's working hours
    centre = WorkCalendar.from_config(kb.catalog.centre.get("opening"))
    calendar = WorkCalendar.always(str(centre.tz)) if settings.agent_hours == "always" else centre
    deps = Deps(settings=settings, db=db, kb=kb, calendar=calendar)
    app.state.work_calendar = centre
    rasa = RasaClient(settings.rasa_url, settings.rasa_timeout_s)
    app.state.deps = deps
    app.state.chat = ChatService(deps, rasa, app.state.bus)
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


def start_bridge(
    app: FastAPI, settings: Settings, db: Database, kb: Any, health: HealthRegistry
) -> Any:
    """The ticket bridge on the chat: tickets, the live queue, and its background work."""
    from assistant.wechat_api import customer_service
    from ticket_bridge.background import Background
    from ticket_bridge.delivery import OutboxDelivery, targets_from
    from ticket_bridge.live import LiveDesk
    from ticket_bridge.tickets import Policy, TicketDesk

    chat = app.state.chat
    deps = app.state.deps
    catalog = kb.catalog
    targets = targets_from(settings)
    policy = Policy.from_centre(catalog.centre, app.state.work_calendar, targets)
    desk = TicketDesk(
        db,
        policy,
        {code: d.name for code, d in catalog.departments.items()},
        {item_id: item.department for item_id, item in catalog.items.items()},
    )
    live = LiveDesk(db, desk, deps.calendar, chat.bus, chat, hotline=deps.hotline)
    deps.bridge = live
    app.state.tickets = desk
    app.state.live = live
    wechat = customer_service(app, settings)
    chat.bind(asyncio.get_running_loop(), wechat.send_text if wechat.configured else None)
    background = Background(live, OutboxDelivery(db, targets) if targets else None)
    background.start()
    health.register("ticket_bridge", live.health)
    return background


def start_kiosk(
    app: FastAPI, settings: Settings, db: Database, kb: Any, health: HealthRegistry
) -> Any:
    """The queue engine (queue.yml beside the catalogue), the ticket printer, and the task
    that marks bookings nobody checked in for as no-shows (returned, to cancel at exit)."""
    from kiosk.errors import QueueConfigInvalid
    from kiosk.printing.ticket_printer import TicketPrinters
    from kiosk.queue.config import QueueConfig
    from kiosk.queue.engine import QueueDesk

    catalog = kb.catalog
    app.state.bus = app.state.chat.bus
    try:
        config = QueueConfig.load(
            settings.kb_source_dir / "queue.yml", set(catalog.departments), set(catalog.items)
        )
    except QueueConfigInvalid as exc:
        # serve the rest; the kiosk says the queue is not ready, /healthz says why
        problem = exc.detail
        log.error("queue not started: %s", problem)
        health.register("queue", lambda: {"status": "degraded", "error": problem})
        return None
    desk = QueueDesk(
        db,
        config,
        app.state.work_calendar,
        settings.secret_key,
        bus=app.state.bus,
        department_names={code: d.name for code, d in catalog.departments.items()},
    )
    app.state.queue = desk
    app.state.call_board = desk
    app.state.deps.queue = desk  # the chat tells how long the queue is
    printers = TicketPrinters.from_setting(  # each kiosk's printer (BANSHI_KIOSK_PRINTER)
        settings.kiosk_printer,
        settings.kiosk_paper_mm,
        str(catalog.centre.get("name", "")),
    )
    app.state.ticket_printer = printers
    health.register("ticket_printer", lambda: app.state.ticket_printer.health())

    async def mark_no_shows() -> None:
        while True:
            try:
                await asyncio.to_thread(desk.mark_no_shows)
            except Exception:  # the database may be restarting: try again next round
                log.exception("marking appointment no-shows failed")
            await asyncio.sleep(60)

    return asyncio.create_task(mark_no_shows())


def start_forms(
    app: FastAPI, settings: Settings, db: Database, kb: Any, health: HealthRegistry
) -> None:
    """The form samples (forms/ beside the catalogue, imported when new) and the A4 printer."""
    from kiosk.forms.library import FormLibrary, departments_and_items
    from kiosk.forms.printing import A4Printer

    departments, items = departments_and_items(kb.catalog)
    library = FormLibrary(
        db,
        departments,
        items,
        settings.kb_source_dir / "forms",
        settings.forms_cache_dir,
        refresh_s=settings.forms_refresh_s,
        today=lambda: app.state.work_calendar.now().date(),  # the centre's day, not UTC's
    )
    try:
        library.start()
    except Exception:  # the database may be restarting: the library retries on each request
        log.exception("form samples: first load failed")
    app.state.forms = library
    app.state.deps.forms = library  # answers link the item's form samples
    app.state.a4_printer = A4Printer(
        settings.forms_a4_printer, settings.forms_lp_command, settings.forms_cups_server
    )
    health.register("form_samples", library.health)
    health.register("a4_printer", lambda: app.state.a4_printer.health())


async def start_voice(
    app: FastAPI, settings: Settings, db: Database, kb: Any, health: HealthRegistry
) -> asyncio.Server | None:
    """The voice hotline (ivr.yml beside the catalogue): prompts, speech if a model is
    configured, and the AudioSocket line for Asterisk when BANSHI_VOICE_AUDIOSOCKET is set.
    Returns the line's server (closed at exit)."""
    from assistant.voice.asr import load_speech
    from assistant.voice.audiosocket import serve
    from assistant.voice.menu import IvrConfig, IvrConfigInvalid
    from assistant.voice.prompts import CallAudio
    from assistant.voice.service import VoiceService
    from kiosk.tts import EspeakSynthesizer

    try:
        config = IvrConfig.load(settings.kb_source_dir / "ivr.yml")
    except IvrConfigInvalid as exc:
        problem = exc.detail
        log.error("voice hotline not started: %s", problem)
        health.register("voice", lambda: {"status": "degraded", "error": problem})
        return None
    centre = kb.catalog.centre
    audio = CallAudio(
        config,
        getattr(app.state, "synthesizer", None) or EspeakSynthesizer(),  # tests set a fake
        settings.voice_dir / "tts",
        values={
            "centre": str(centre.get("name", "")),
            "hotline": str(centre.get("hotline", "12345")),
            "phone": str(centre.get("phone", "")),
            "hours": str((centre.get("hours") or {}).get("weekdays", "")),
        },
    )
    recognizer, speech = load_speech(settings.vosk_model or None)
    if recognizer is None:
        log.warning("voice hotline: speech is off, keys only (%s)", speech.reason)
    else:
        log.info("voice hotline: speech on (%s, %d Hz)", speech.model, speech.sample_rate)
    voice = VoiceService(
        db,
        config,
        audio,
        app.state.work_calendar,
        settings.voice_dir / "recordings",
        recognizer=recognizer,
        speech_reason=speech.reason,
        chat=app.state.chat,
        tickets=app.state.tickets,
        max_calls=settings.voice_max_calls,
        busy_audio=lambda: audio.say("线路繁忙，请稍后再拨。"),
    )
    app.state.voice = voice
    health.register("voice", voice.health)
    if not settings.voice_audiosocket:
        return None  # web calls only: prompts are rendered when first needed
    # a telephone line: every fixed prompt rendered before the first caller needs it
    app.state.voice_warm = asyncio.create_task(asyncio.to_thread(audio.warm))
    host, _, port = settings.voice_audiosocket.rpartition(":")
    server = await serve(voice.handle, host or "127.0.0.1", int(port))
    log.info("voice hotline: AudioSocket on %s", settings.voice_audiosocket)
    return server

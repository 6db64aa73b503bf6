"""The library of form samples as the kiosks and phones see it.

The database holds every version of every definition (``form_versions``); the served one is
a form's highest version. Files in ``forms/`` beside the catalogue are imported at start-up
when their content is new for that form (so an unchanged file never undoes an administrator's
upload), and administrators upload new versions through the API. Each process keeps a
snapshot (definitions and the search index) and checks the newest version id at most every
``refresh_s`` seconds, so every kiosk shows an upload within seconds and nobody restarts.

A definition that does not validate is refused with the field named; a stored version that
no longer validates (the catalogue changed) is logged and the form keeps its last good one."""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from banshi.db import Database
from banshi.errors import NotFound
from kiosk.errors import FormInvalid
from kiosk.forms.definition import FormDefinition, parse_definition
from kiosk.forms.models import FormVersion, FormView
from kiosk.forms.search import FormIndex, initial, sort_key

log = logging.getLogger(__name__)
Channel = Literal["kiosk", "phone", "web"]
ImageKind = Literal["sample", "blank", "thumb"]
VIEWS_REFRESH_S = 60.0  # view counts only break ties in the ranking: a minute old is fine
VIEWS_DAYS = 90


@dataclass(frozen=True)
class Stored:
    form: FormDefinition
    version: int
    updated_at: dt.datetime
    source: str


@dataclass
class Snapshot:
    generation: tuple[int, int]  # newest version id and the number of versions
    forms: dict[str, Stored] = field(default_factory=dict)
    index: FormIndex = field(default_factory=FormIndex)


class FormLibrary:
    def __init__(
        self,
        db: Database,
        departments: dict[str, str],
        items: dict[str, str],
        source_dir: Path | None,
        cache_dir: Path,
        refresh_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.db = db
        self.departments = departments  # code -> name
        self.items = items  # id -> name
        self.source_dir = source_dir
        self.cache_dir = cache_dir
        self.refresh_s = refresh_s
        self._clock = clock
        self.today = today  # the centre's day (views are counted per local day)
        self._lock = threading.Lock()
        self._snapshot = Snapshot((0, 0))
        self._checked = -1e9
        self._views_at = -1e9
        self._render_locks: dict[str, threading.Lock] = {}
        self._import_problems: list[str] = []  # files refused at the last import
        self._serve_problems: list[str] = []  # stored versions refused at the last reload

    # -- loading -------------------------------------------------------------------------
    def start(self) -> None:
        self.sync_files()
        self.refresh(force=True)

    def sync_files(self) -> list[str]:
        """Import the definition files whose content this form has never had; a bad file is
        named in ``problems`` and skipped (the version already stored keeps serving)."""
        problems: list[str] = []
        if self.source_dir is None or not self.source_dir.is_dir():
            return problems
        for path in sorted(self.source_dir.glob("*.yml")):
            source = f"forms/{path.name}"
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8"))
                self.store(data, source=f"file {source}", by="", keep_newer=True, refresh=False)
            except FormInvalid as exc:
                problems.append(exc.detail)
                log.error("form sample not imported: %s", exc.detail)
            except yaml.YAMLError as exc:
                problems.append(f"{source}: not valid YAML ({exc})")
                log.error("form sample not imported: %s is not valid YAML: %s", source, exc)
        self._import_problems = problems
        return problems

    def store(
        self, data: Any, source: str, by: str, keep_newer: bool = False, refresh: bool = True
    ) -> dict[str, Any]:
        """Validate and store ``data`` as the form's next version. ``keep_newer`` (file
        imports): content the form has had before, in any version, is not stored again.
        ``refresh=False`` (imports of many): the caller rebuilds the snapshot once after."""
        form = self.parse(data, source)
        digest = form.digest
        for _attempt in range(5):
            with self.db.session() as s:
                rows = s.execute(
                    select(FormVersion.version, FormVersion.digest)
                    .where(FormVersion.form_id == form.id)
                    .order_by(FormVersion.version.desc())
                ).all()
                if rows and (
                    rows[0].digest == digest or (keep_newer and digest in {r.digest for r in rows})
                ):
                    return {"id": form.id, "version": rows[0].version, "status": "unchanged"}
                version = rows[0].version + 1 if rows else 1
                try:
                    with s.begin_nested():
                        s.add(
                            FormVersion(
                                form_id=form.id,
                                version=version,
                                digest=digest,
                                definition=form.raw,
                                source=source[:256],
                                created_by=by[:64],
                            )
                        )
                except IntegrityError:
                    continue  # another process stored a version meanwhile: look again
            log.info("form %s version %d stored (%s)", form.id, version, source)
            if refresh:
                self.refresh(force=True)
            return {"id": form.id, "version": version, "status": "created"}
        raise RuntimeError(f"form {form.id}: could not store a version (too much contention)")

    def parse(self, data: Any, source: str = "") -> FormDefinition:
        return parse_definition(data, self.departments, self.items, source=source)

    def refresh(self, force: bool = False) -> Snapshot:
        """The current snapshot; rebuilt when the database has a version this one lacks."""
        now = self._clock()
        if not force and now - self._checked < self.refresh_s:
            return self._snapshot
        with self._lock:
            if not force and now - self._checked < self.refresh_s:
                return self._snapshot
            with self.db.session() as s:
                newest, count = s.execute(
                    select(func.coalesce(func.max(FormVersion.id), 0), func.count(FormVersion.id))
                ).one()
            generation = (int(newest), int(count))
            if generation != self._snapshot.generation:
                self._snapshot = self._build(generation)
                self._views_at = -1e9
            if now - self._views_at >= VIEWS_REFRESH_S:
                self._snapshot.index.set_views(self._view_totals())
                self._views_at = now
            self._checked = now
            return self._snapshot

    def _build(self, generation: tuple[int, int]) -> Snapshot:
        """The newest version of every form; forms whose version did not change keep their
        parsed definition and index entry (an upload re-reads one form, not the library)."""
        latest = (
            select(FormVersion.form_id, func.max(FormVersion.version).label("v"))
            .group_by(FormVersion.form_id)
            .subquery()
        )
        old = self._snapshot
        with self.db.session() as s:
            heads = s.execute(
                select(FormVersion.id, FormVersion.form_id, FormVersion.version).join(
                    latest,
                    (FormVersion.form_id == latest.c.form_id) & (FormVersion.version == latest.c.v),
                )
            ).all()
            fresh = [
                h.id
                for h in heads
                if h.form_id not in old.forms or old.forms[h.form_id].version != h.version
            ]
            rows = (
                {
                    r.form_id: r
                    for r in s.scalars(select(FormVersion).where(FormVersion.id.in_(fresh)))
                }
                if fresh
                else {}
            )
        snap = Snapshot(generation)
        problems = []
        for head in heads:
            row = rows.get(head.form_id)
            if row is None:  # unchanged since the last snapshot
                snap.forms[head.form_id] = old.forms[head.form_id]
                snap.index.forms[head.form_id] = old.index.forms[head.form_id]
                continue
            try:
                form = self.parse(row.definition, f"{row.form_id} v{row.version}")
            except FormInvalid as exc:
                problems.append(exc.detail)
                log.error("form sample version not served: %s", exc.detail)
                if row.form_id in old.forms:  # the last good version keeps serving
                    snap.forms[row.form_id] = old.forms[row.form_id]
                    snap.index.forms[row.form_id] = old.index.forms[row.form_id]
                continue
            snap.forms[row.form_id] = Stored(form, row.version, row.created_at, row.source)
            snap.index.add(
                form.id,
                form.title,
                form.tags,
                names=[
                    self.departments.get(form.department, ""),
                    *(self.items.get(i, "") for i in form.services),
                ],
                details=[form.summary, *(x.label for x in form.fields)],
            )
        self._serve_problems = problems
        return snap

    @property
    def problems(self) -> list[str]:
        """Definitions refused at the last import or reload, for /healthz and the log."""
        return [*self._import_problems, *self._serve_problems]

    # -- reading -------------------------------------------------------------------------
    def get(self, form_id: str) -> Stored:
        stored = self.refresh().forms.get(form_id)
        if stored is None:
            raise NotFound("这份样表不存在或已下架。", f"no form {form_id!r}")
        return stored

    def search(
        self,
        query: str,
        department: str | None = None,
        limit: int = 50,
        service: str | None = None,
    ) -> list[dict[str, Any]]:
        """Ranked cards for ``query``, or (no query) all forms in pinyin order; limited to a
        department's forms or to those of a catalogue item (a guide's 填表样例)."""
        snap = self.refresh()
        among = None
        if department or service:
            among = {
                i
                for i, st in snap.forms.items()
                if (not department or st.form.department == department)
                and (not service or service in st.form.services)
            }
        if not query.strip():
            chosen = [st for st in snap.forms.values() if among is None or st.form.id in among]
            chosen.sort(
                key=lambda st: (
                    sort_key(self.departments.get(st.form.department, "")),
                    sort_key(st.form.title),
                )
            )
            return [self.card(st) for st in chosen[:limit]]
        return [
            self.card(snap.forms[h.form_id], h.matched)
            for h in snap.index.search(query, limit, among)
        ]

    def count(self) -> int:
        return len(self.refresh().forms)

    def department_index(self) -> list[dict[str, Any]]:
        counts: dict[str, int] = {}
        for st in self.refresh().forms.values():
            counts[st.form.department] = counts.get(st.form.department, 0) + 1
        names = {code: self.departments.get(code, code) for code in counts}
        order = sorted(counts, key=lambda c: (initial(names[c]), sort_key(names[c])))
        return [
            {"code": c, "name": names[c], "initial": initial(names[c]), "count": counts[c]}
            for c in order
        ]

    def similar(self, form_id: str, limit: int = 4) -> list[Stored]:
        """Forms sharing tags (most first), then service items or the department."""
        snap = self.refresh()
        me = snap.forms[form_id].form
        tags = set(me.tags)
        scored = []
        for other in snap.forms.values():
            f = other.form
            if f.id == form_id:
                continue
            shared = len(tags & set(f.tags))
            score = shared * 3 + len(set(me.services) & set(f.services)) * 2
            score += 1 if f.department == me.department else 0
            if score:
                scored.append((score, sort_key(f.title), other))
        scored.sort(key=lambda t: (-t[0], t[1]))
        return [t[2] for t in scored[:limit]]

    def forms_for_item(self, item_id: str) -> list[tuple[str, str]]:
        """The forms of a catalogue item, as (id, title): the chat links them after an answer."""
        return [(c["id"], c["title"]) for c in self.search("", service=item_id)]

    def card(self, stored: Stored, matched: str = "") -> dict[str, Any]:
        f = stored.form
        out = {
            "id": f.id,
            "title": f.title,
            "department": f.department,
            "department_name": self.departments.get(f.department, f.department),
            "tags": list(f.tags),
            "summary": f.summary,
            "version": stored.version,
            "thumb": f"/api/forms/{f.id}/thumb.png?v={f.digest}",
        }
        if matched:
            out["matched"] = matched
        return out

    def versions(self, form_id: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(
                select(FormVersion)
                .where(FormVersion.form_id == form_id)
                .order_by(FormVersion.version.desc())
            ).all()
        if not rows:
            raise NotFound("这份样表不存在。", f"no form {form_id!r}")
        return [
            {
                "version": r.version,
                "digest": r.digest,
                "source": r.source,
                "created_by": r.created_by,
                "created_at": r.created_at.isoformat(timespec="seconds"),
            }
            for r in rows
        ]

    # -- 关注度 ------------------------------------------------------------------------
    def record_view(self, form_id: str, channel: Channel, day: dt.date | None = None) -> None:
        """One more view of the form today on ``channel``; an UPDATE, or the day's first
        row (a concurrent first view that loses the insert adds itself to the winner's)."""
        day = day or self.today()
        key = (FormView.form_id == form_id) & (FormView.day == day) & (FormView.channel == channel)
        bump = update(FormView).where(key).values(views=FormView.views + 1)
        for _attempt in range(3):
            with self.db.session() as s:
                if s.execute(bump).rowcount:  # type: ignore[attr-defined]
                    return
                try:
                    with s.begin_nested():
                        s.add(FormView(form_id=form_id, day=day, channel=channel, views=1))
                    return
                except IntegrityError:
                    continue

    def view_counts(self, since: dt.date, until: dt.date) -> list[dict[str, Any]]:
        """Views per form and channel over [since, until], most viewed first (statistics)."""
        with self.db.session() as s:
            rows = s.execute(
                select(FormView.form_id, FormView.channel, func.sum(FormView.views))
                .where(FormView.day >= since, FormView.day <= until)
                .group_by(FormView.form_id, FormView.channel)
            ).all()
        totals: dict[str, dict[str, int]] = {}
        for form_id, channel, n in rows:
            totals.setdefault(form_id, {})[channel] = int(n)
        forms = self.refresh().forms
        out: list[dict[str, Any]] = [
            {
                "id": form_id,
                "title": forms[form_id].form.title if form_id in forms else form_id,
                "views": sum(by.values()),
                "by_channel": by,
            }
            for form_id, by in totals.items()
        ]
        out.sort(key=lambda r: (-int(r["views"]), str(r["id"])))
        return out

    def _view_totals(self) -> dict[str, int]:
        since = self.today() - dt.timedelta(days=VIEWS_DAYS)
        with self.db.session() as s:
            rows = s.execute(
                select(FormView.form_id, func.sum(FormView.views))
                .where(FormView.day >= since)
                .group_by(FormView.form_id)
            ).all()
        return {form_id: int(n) for form_id, n in rows}

    # -- images --------------------------------------------------------------------------
    def image(self, form_id: str, kind: ImageKind, fmt: Literal["png", "pdf"]) -> tuple[bytes, str]:
        """The rendered form and its digest (for ETags), drawn once per version and kept
        on disk, where every process of this machine finds it."""
        from kiosk.forms import render

        form = self.get(form_id).form
        name = f"{form.id}-{form.digest}-{kind}.{fmt}"
        path = self.cache_dir / name
        if path.is_file():
            return path.read_bytes(), form.digest
        with self._lock:
            lock = self._render_locks.setdefault(name, threading.Lock())
        with lock:  # ten kiosks opening a new form draw it once
            if path.is_file():
                return path.read_bytes(), form.digest
            if kind == "thumb":
                data = render.render_thumbnail(form)
            elif fmt == "pdf":
                data = render.render_pdf(form, filled=kind == "sample")
            else:
                data = render.render_png(form, filled=kind == "sample")
            _write_atomic(path, data)
        return data, form.digest

    def health(self) -> dict[str, Any]:
        from kiosk.forms.render import renderer_health

        snap = self.refresh()
        report: dict[str, Any] = {"status": "ok", "forms": len(snap.forms)}
        rendering = renderer_health()
        if rendering.get("status") != "ok":
            report.update(status="degraded", renderer=rendering)
        if self.problems:
            report.update(status="degraded", problems=self.problems[-5:])
        return report


def departments_and_items(catalog: Any) -> tuple[dict[str, str], dict[str, str]]:
    return (
        {code: d.name for code, d in catalog.departments.items()},
        {item_id: item.name for item_id, item in catalog.items.items()},
    )


def definitions_in(directory: Path) -> Iterable[tuple[Path, Any]]:
    """The YAML files of a forms folder, parsed (for `banshi forms validate`)."""
    for path in sorted(directory.glob("*.yml")):
        yield path, yaml.safe_load(path.read_text(encoding="utf-8"))


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a power cut leaves the old file or the new one, never half

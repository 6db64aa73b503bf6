"""Tables of the form samples: every version of every definition (never overwritten, so an
administrator can see what changed and a bad upload leaves the served version alone), and
daily view counts per form and channel (关注度, for the statistics)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from banshi.db import Base, UtcDateTime, now_utc


class FormVersion(Base):
    """The served version of a form is its highest ``version``."""

    __tablename__ = "form_versions"
    __table_args__ = (UniqueConstraint("form_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # grows with every change
    form_id: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(256))  # "file forms/x.yml" or "upload"
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), default=now_utc)


class FormView(Base):
    __tablename__ = "form_views"

    form_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)  # kiosk | phone | web
    views: Mapped[int] = mapped_column(Integer, default=0)

"""Builders for the form sample tests: the sample catalogue, a definition to change, and a
library over a database."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from banshi.db import Database
from banshi.settings import SAMPLE_KB_DIR
from kiosk.forms.library import FormLibrary, departments_and_items
from knowledge_base.source import Catalog

FORMS_DIR = SAMPLE_KB_DIR / "forms"
RESIDENCE = FORMS_DIR / "residence-permit-application.yml"


@cache
def catalogue() -> tuple[dict[str, str], dict[str, str]]:
    return departments_and_items(Catalog.load(SAMPLE_KB_DIR))


def residence_definition(**overrides: Any) -> dict[str, Any]:
    """The sample 居住证申领登记表 as parsed YAML, with top-level keys replaced."""
    # through JSON, as an upload arrives: YAML's dates become text
    data = json.loads(
        json.dumps(yaml.safe_load(RESIDENCE.read_text(encoding="utf-8")), default=str)
    )
    data.update(overrides)
    return data  # type: ignore[no-any-return]


def make_library(
    db: Database,
    cache_dir: Path,
    source_dir: Path | None = FORMS_DIR,
    clock: Callable[[], float] | None = None,
    refresh_s: float = 2.0,
) -> FormLibrary:
    departments, items = catalogue()
    kwargs: dict[str, Any] = {"clock": clock} if clock else {}
    return FormLibrary(db, departments, items, source_dir, cache_dir, refresh_s=refresh_s, **kwargs)


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

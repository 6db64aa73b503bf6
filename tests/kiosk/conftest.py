"""Fixtures for the kiosk's printing tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fake_printer import FakeNetworkPrinter


@pytest.fixture
def fake_printer() -> Iterator[Callable[..., FakeNetworkPrinter]]:
    """``fake_printer(PAPER_OUT)``: a started fake network printer, stopped after the test."""
    started: list[FakeNetworkPrinter] = []

    def start(statuses: dict[int, int] | None = None) -> FakeNetworkPrinter:
        printer = FakeNetworkPrinter(statuses).__enter__()
        started.append(printer)
        return printer

    yield start
    for printer in started:
        printer.__exit__(None, None, None)

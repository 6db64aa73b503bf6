"""Health checks: each part registers a function that reports its own dependency's state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[], dict[str, Any]]
# "ok" serves fully; "degraded" serves with a fallback; "down" cannot serve.
_ORDER = {"ok": 0, "degraded": 1, "down": 2}


class HealthRegistry:
    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def register(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def report(self) -> dict[str, Any]:
        results: dict[str, dict[str, Any]] = {}
        for name, check in self._checks.items():
            try:
                results[name] = check()
            except Exception as exc:  # a failing check is a finding, not a crash
                results[name] = {"status": "down", "error": f"{type(exc).__name__}: {exc}"}
        worst = max(
            (r.get("status", "down") for r in results.values()),
            key=lambda s: _ORDER.get(s, 2),
            default="ok",
        )
        return {"status": worst, "checks": results}

"""Talking to a running Rasa server over its REST channel."""

from __future__ import annotations

from typing import Any

import httpx


class RasaDown(RuntimeError):
    """Rasa did not answer (not running, timed out, or failed)."""


class RasaClient:
    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def send(self, sender: str, text: str, metadata: dict[str, Any]) -> list[dict[str, Any]]:
        """One user turn; Rasa's bot messages, merged into our message shape."""
        try:
            r = await self._http.post(
                f"{self.base_url}/webhooks/rest/webhook",
                json={"sender": sender, "message": text, "metadata": metadata},
            )
            r.raise_for_status()
            out = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise RasaDown(f"Rasa at {self.base_url}: {exc!r}") from exc
        if not isinstance(out, list):
            raise RasaDown(f"Rasa at {self.base_url}: unexpected reply {out!r:.200}")
        return from_rasa(out)

    def health_sync(self) -> dict[str, Any]:
        try:
            r = httpx.get(f"{self.base_url}/status", timeout=1.5)
            r.raise_for_status()
            model = r.json().get("model_file", "")
        except (httpx.HTTPError, ValueError) as exc:
            return {"status": "down", "url": self.base_url, "error": type(exc).__name__}
        return {"status": "ok", "url": self.base_url, "model": str(model).rsplit("/", 1)[-1]}

    async def close(self) -> None:
        await self._http.aclose()


def from_rasa(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rasa sends text (+ buttons) and our links as a separate ``custom`` message: join them."""
    messages: list[dict[str, Any]] = []
    for m in out:
        if m.get("text"):
            buttons = [
                {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
                for b in m.get("buttons") or []
            ]
            messages.append({"text": m["text"], "buttons": buttons, "links": []})
        links = (m.get("custom") or {}).get("links") if isinstance(m.get("custom"), dict) else None
        if links and messages:
            messages[-1]["links"].extend(links)
    return messages

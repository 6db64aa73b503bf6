"""A Rasa server run beside the API by `banshi serve`: started, watched, restarted if it
dies, stopped with the API. While it is down the API answers from the knowledge base."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from assistant.rasa_project import RasaProject

log = logging.getLogger(__name__)
RESTART_LIMIT = 5  # restarts within RESTART_WINDOW_S before giving up (and staying degraded)
RESTART_WINDOW_S = 600


class RasaProcess:
    def __init__(self, project: RasaProject, log_file: Path | None = None) -> None:
        self.project = project
        parts = urlsplit(project.settings.rasa_url)
        self.port = parts.port or 5005
        self.url = project.settings.rasa_url.rstrip("/")
        self.log_file = log_file or project.home / "rasa.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._restarts: list[float] = []
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        self._spawn()
        self._watcher = threading.Thread(target=self._watch, name="rasa-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        cmd = self.project.run_command(self.port)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                cmd,
                cwd=self.project.build,
                env=self.project.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # our signal handling decides when it stops
            )
        log.info("Rasa starting (pid %s) on %s, log %s", self._proc.pid, self.url, self.log_file)

    def _watch(self) -> None:
        while not self._stopping.wait(2.0):
            proc = self._proc
            if proc is None or proc.poll() is None:
                continue
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW_S]
            if len(self._restarts) >= RESTART_LIMIT:
                log.error(
                    "Rasa keeps exiting (see %s); chat stays on the knowledge base", self.log_file
                )
                return
            log.warning("Rasa exited with %s; restarting", proc.returncode)
            self._restarts.append(now)
            self._spawn()

    def wait_ready(self, timeout_s: float = 180.0) -> bool:
        """True once Rasa has loaded its model and answers /status."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None and self._watcher is None:
                return False
            try:
                if httpx.get(f"{self.url}/status", timeout=1.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        return False

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("Rasa did not stop in %.0f s; killing it", timeout_s)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

"""A real CUPS scheduler for the A4 printing tests, private to the test session: cupsd on a
free loopback port with its own configuration and spool under a temporary folder, and a
``capture`` backend that appends each job's document to a file (as ``file://`` does for the
ticket printer), so a test reads exactly what CUPS would have sent to the printer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

CUPSD = "/usr/sbin/cupsd"
BACKEND = """#!/bin/sh
# capture:/path appends each job's document to that file
[ $# -eq 0 ] && { echo 'file capture "Unknown" "Capture to a file"'; exit 0; }
out=${DEVICE_URI#capture:}
if [ -n "$6" ]; then cat "$6" >> "$out"; else cat >> "$out"; fi
"""


class CupsServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> CupsServer:
        r = self.root
        for sub in ("etc", "spool", "cache", "state", "log", "tmp", "out", "bin/backend"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        (r / "tmp").chmod(0o777)
        (r / "out").chmod(0o777)
        # the system's filters and helpers, our backend (mode 0700: CUPS runs it as root)
        for entry in Path("/usr/lib/cups").iterdir():
            if entry.name != "backend":
                (r / "bin" / entry.name).symlink_to(entry)
        backend = r / "bin/backend/capture"
        backend.write_text(BACKEND, encoding="utf-8")
        backend.chmod(0o700)
        (r / "etc/cupsd.conf").write_text(
            f"Listen {self.address}\nWebInterface No\nBrowsing Off\nDefaultAuthType None\n"
            "LogLevel warn\n<Location />\n  Order allow,deny\n  Allow all\n</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order allow,deny\n    Allow all\n"
            "  </Limit>\n</Policy>\n",
            encoding="utf-8",
        )
        files = {
            "ServerRoot": r / "etc",
            "RequestRoot": r / "spool",
            "CacheDir": r / "cache",
            "StateDir": r / "state",
            "TempDir": r / "tmp",
            "ServerBin": r / "bin",
            "AccessLog": r / "log/access_log",
            "ErrorLog": r / "log/error_log",
            "PageLog": r / "log/page_log",
        }
        (r / "etc/cups-files.conf").write_text(
            "".join(f"{k} {v}\n" for k, v in files.items()) + "DataDir /usr/share/cups\n",
            encoding="utf-8",
        )
        self._process = subprocess.Popen(
            [CUPSD, "-f", "-c", str(r / "etc/cupsd.conf"), "-s", str(r / "etc/cups-files.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"cupsd did not listen on {self.address}: see {r}/log/error_log")

    def add_queue(self, name: str) -> Path:
        """A queue whose jobs land in the returned file."""
        out = self.root / "out" / f"{name}.bin"
        self.admin("lpadmin", "-p", name, "-E", "-v", f"capture:{out}", "-m", "raw")
        return out

    def admin(self, command: str, *args: str) -> None:
        subprocess.run(
            [shutil.which(command) or f"/usr/sbin/{command}", "-h", self.address, *args],
            check=True,
            capture_output=True,
            env={**os.environ, "LANG": "C.UTF-8"},
        )

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

"""The production topology on one machine (`banshi serve --production`), from Debian's
packages: PostgreSQL, Redis, M Rasa servers, N API processes and nginx in front. Each is a
child process, restarted when it dies. It is for evaluation, and what the load and fault
tests run; docker/ describes the same topology for containers (the same nginx.conf, the
same settings).

Files under ``<data dir>/production/``:
  secrets.env  passwords and the secret key made on the first start (mode 0600), used when
               the environment does not give them; rotate by editing it and restarting
  pg/          the PostgreSQL cluster (not made when BANSHI_DATABASE_URL is given)
  redis/       Redis's configuration (not used when BANSHI_REDIS_URL is given)
  nginx/       nginx.conf and nginx's temp files
  logs/        one log per process
  state.json   ports and process ids, for operators and the fault tests

Start order: PostgreSQL, Redis, the migrations (once, `banshi db upgrade`) and the first
administrator, Rasa, api-1 (alone, until ready: it imports the sample into an empty database),
the other API processes (BANSHI_MIGRATE=check: they only verify the schema), nginx.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from banshi.nginx import NginxLayout, render
from banshi.settings import Settings

log = logging.getLogger(__name__)
SECRET_NAMES = ("BANSHI_SECRET_KEY", "PG_PASSWORD", "REDIS_PASSWORD", "ADMIN_PASSWORD")
RESTART_BACKOFF_S = (0.5, 1, 2, 5, 10)  # a child that keeps dying is retried less often
STABLE_AFTER_S = 30.0  # alive this long: the next death starts the backoff again


@dataclass(frozen=True)
class Plan:
    """How many processes, on which loopback ports."""

    api_processes: int = 2
    rasa_processes: int = 1
    public_port: int = 8000
    internal_port: int = 8090  # nginx for Rasa and the action webhook; loopback only
    api_base_port: int = 8100  # api-1 on 8101, api-2 on 8102, …
    rasa_base_port: int = 5100  # rasa-1 on 5101, …
    postgres_port: int = 5433
    redis_port: int = 6380
    rasa: bool = True  # False: chat answers from the knowledge base directly

    def api_ports(self) -> list[int]:
        return [self.api_base_port + i for i in range(1, self.api_processes + 1)]

    def rasa_ports(self) -> list[int]:
        return [self.rasa_base_port + i for i in range(1, self.rasa_processes + 1)]


class Child:
    """One supervised process: started, restarted with backoff when it dies, stopped."""

    def __init__(
        self,
        name: str,
        cmd: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], bool] | None = None,
        stop_signal: int = signal.SIGTERM,
        user: str | None = None,
    ) -> None:
        self.name, self.cmd, self.log_path = name, cmd, log_path
        self.env, self.cwd, self._ready = env, cwd, ready
        self.user = user if os.geteuid() == 0 else None  # PostgreSQL refuses to run as root
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started_at = 0.0
        self._failures = 0
        self._next_start = 0.0
        self.wanted = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self) -> None:
        self.wanted = True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"--- {time.strftime('%F %T')} starting {self.name}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.cmd,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl+C reaches the supervisor, which stops us in order
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
            )
        self.started_at = time.monotonic()
        log.info("%s started (pid %s)", self.name, self.proc.pid)

    def ready(self) -> bool:
        return self.pid is not None and (self._ready() if self._ready else True)

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready():
                return
            if self.proc is not None and self.proc.poll() is not None and not self.wanted:
                break
            time.sleep(0.2)
        raise TopologyError(f"{self.name} did not become ready; see {self.log_path}")

    def check(self) -> None:
        """Restart the process if it died while wanted (called by the supervisor)."""
        if not self.wanted or self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            lived = now - self.started_at
            self._failures = 0 if lived > STABLE_AFTER_S else self._failures + 1
            delay = RESTART_BACKOFF_S[min(self._failures, len(RESTART_BACKOFF_S) - 1)]
            log.warning(
                "%s exited with %s after %.0f s; restarting in %.1f s (log: %s)",
                self.name, self.proc.returncode, lived, delay, self.log_path,
            )  # fmt: skip
            self._next_start = now + delay
        if now >= self._next_start:
            self._next_start = 0.0
            self.restarts += 1
            self.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self.wanted = False
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(self.stop_signal)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0f s; killing it", self.name, timeout_s)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


class TopologyError(RuntimeError):
    """The topology could not be started (a program is missing, a port is taken …)."""


@dataclass
class Topology:
    settings: Settings
    plan: Plan = field(default_factory=Plan)
    children: dict[str, Child] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = (self.settings.data_dir / "production").resolve()
        self.logs = self.root / "logs"
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.secrets: dict[str, str] = {}

    # -- the whole thing ------------------------------------------------------------------
    def start(self, timeout_s: float = 300.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.secrets = self._load_secrets()
        self._check_ports()
        try:
            if not self.settings.database_url:
                self._start_postgres()
            if not self.settings.redis_url:
                self._start_redis()
            self._migrate()
            if self.plan.rasa:
                self._start_rasa()
            self._start_api()
            self._start_nginx()
            for child in self.children.values():
                child.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        self.write_state()

    def stop(self) -> None:
        """nginx first (no new requests), then the API, Rasa, Redis and PostgreSQL."""
        self._stopping.set()
        for child in reversed(list(self.children.values())):
            child.stop()
        self.write_state()

    def _supervise(self) -> None:
        while not self._stopping.wait(0.5):
            changed = False
            for child in self.children.values():
                before = child.restarts
                child.check()
                changed = changed or child.restarts != before
            if changed:
                self.write_state()

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.env"

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.plan.public_port}"

    @property
    def database_url(self) -> str:
        if self.settings.database_url:
            return self.settings.database_url
        pw = quote(self.secrets["PG_PASSWORD"], safe="")
        return f"postgresql+psycopg://banshi:{pw}@127.0.0.1:{self.plan.postgres_port}/banshi"

    @property
    def redis_url(self) -> str:
        if self.settings.redis_url:
            return self.settings.redis_url
        pw = quote(self.secrets["REDIS_PASSWORD"], safe="")
        return f"redis://:{pw}@127.0.0.1:{self.plan.redis_port}/0"

    def write_state(self) -> None:
        state = {
            "public_url": self.public_url,
            "processes": {
                name: {"pid": c.pid, "restarts": c.restarts, "log": str(c.log_path)}
                for name, c in self.children.items()
            },
        }
        tmp = self.root / "state.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.root / "state.json")

    # -- secrets --------------------------------------------------------------------------
    def _load_secrets(self) -> dict[str, str]:
        """Given ones from the environment win; the rest are made once and kept (0600)."""
        path = self.secrets_file
        kept: dict[str, str] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                name, sep, value = line.partition("=")
                if sep and not line.startswith("#"):
                    kept[name.strip()] = value.strip()
        made = {n: secrets.token_urlsafe(24) for n in SECRET_NAMES if n not in kept}
        if made:
            kept.update(made)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("# made by banshi serve --production; keep private\n")
                f.writelines(f"{n}={kept[n]}\n" for n in SECRET_NAMES)
        if os.environ.get("BANSHI_SECRET_KEY"):
            kept["BANSHI_SECRET_KEY"] = os.environ["BANSHI_SECRET_KEY"]
        return kept

    def _check_ports(self) -> None:
        ports = [self.plan.public_port, self.plan.internal_port, *self.plan.api_ports()]
        if self.plan.rasa:
            ports += self.plan.rasa_ports()
        if not self.settings.database_url:
            ports.append(self.plan.postgres_port)
        if not self.settings.redis_url:
            ports.append(self.plan.redis_port)
        taken = [p for p in ports if _port_in_use(p)]
        if taken:
            raise TopologyError(f"ports already in use: {taken} (another banshi running?)")

    # -- PostgreSQL -------------------------------------------------------------------------
    def _start_postgres(self) -> None:
        pgbin = _postgres_bin()
        data = self.root / "pg" / "data"
        run = self.root / "pg" / "run"
        run.mkdir(parents=True, exist_ok=True)
        _own(self.root / "pg", "postgres")
        _own(run, "postgres")
        if (
            os.geteuid() == 0
            and subprocess.run(
                ["test", "-w", str(run)], user="postgres", group="postgres", extra_groups=[]
            ).returncode
        ):
            raise TopologyError(
                f"PostgreSQL runs as the user postgres, which cannot reach {run}: give the "
                "folders above the data directory o+x (a data directory under /root or in a "
                "mktemp -d folder is out of its reach)"
            )
        fresh = not (data / "PG_VERSION").exists()
        if fresh:
            pwfile = self.root / "pg" / "pw.tmp"
            pwfile.write_text(self.secrets["PG_PASSWORD"] + "\n")
            _own(pwfile, "postgres")
            try:
                _as("postgres", [
                    str(pgbin / "initdb"), "-D", str(data), "-U", "banshi",
                    f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8",
                    "--locale=C.UTF-8",
                ], self.logs / "postgres-initdb.log")  # fmt: skip
            finally:
                pwfile.unlink(missing_ok=True)
        cmd = [
            str(pgbin / "postgres"), "-D", str(data), "-p", str(self.plan.postgres_port),
            "-k", str(run), "-c", "listen_addresses=127.0.0.1",
        ]  # fmt: skip
        child = Child(
            "postgres",
            cmd,
            self.logs / "postgres.log",
            ready=lambda: _port_in_use(self.plan.postgres_port),
            stop_signal=signal.SIGINT,  # PostgreSQL's "fast" shutdown
            user="postgres",
        )
        self.children["postgres"] = child
        child.start()
        child.wait_ready(60)
        self._create_databases()

    def _create_databases(self) -> None:
        import psycopg

        url = self.database_url.replace("postgresql+psycopg://", "postgresql://")
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)
                break
            except psycopg.OperationalError:  # accepting connections a moment after the port
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        with conn:
            for name in ("banshi", "rasa"):
                found = conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (name,))
                if not found.fetchone():
                    conn.execute(f'CREATE DATABASE "{name}"')

    # -- Redis ----------------------------------------------------------------------------
    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise TopologyError("redis-server is not installed: run scripts/production-setup")
        folder = self.root / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # Only live events, rate-limit counters and Rasa's locks: nothing to persist.
            f.write(
                f"bind 127.0.0.1\nport {self.plan.redis_port}\nprotected-mode yes\n"
                f'requirepass "{self.secrets["REDIS_PASSWORD"]}"\nsave ""\nappendonly no\n'
                f"dir {folder}\n"
            )
        child = Child(
            "redis",
            [binary, str(conf)],
            self.logs / "redis.log",
            ready=lambda: _port_in_use(self.plan.redis_port),
        )
        self.children["redis"] = child
        child.start()
        child.wait_ready(30)

    # -- the schema, once -------------------------------------------------------------------
    def _migrate(self) -> None:
        env = self.child_env(migrate="auto")
        out = self.logs / "migrate.log"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("ab") as f:
            done = subprocess.run(
                [self._banshi, "db", "upgrade"],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise TopologyError(f"database migration failed; see {out}")
        # the first administrator (password in secrets.env); nothing when it exists
        with out.open("ab") as f:
            subprocess.run(
                [self._banshi, "users", "add", "admin", "--role", "admin", "--password-stdin",
                 "--if-missing"],
                env=env, input=f"{self.secrets['ADMIN_PASSWORD']}\n".encode(), stdout=f,
                stderr=subprocess.STDOUT, check=True,
            )  # fmt: skip

    @property
    def _banshi(self) -> str:
        return str(Path(sys.executable).parent / "banshi")

    # -- Rasa -----------------------------------------------------------------------------
    def _start_rasa(self) -> None:
        from assistant.rasa_project import RasaProject, RasaUnavailable

        internal = f"http://127.0.0.1:{self.plan.internal_port}"
        project = RasaProject(
            self.settings.model_copy(
                update={
                    "redis_url": self.redis_url,
                    "rasa_tracker_url": self.tracker_url,
                    "secret_key": self.secrets["BANSHI_SECRET_KEY"],
                }
            )
        )
        try:
            project.require_model()
        except RasaUnavailable as exc:
            raise TopologyError(f"{exc} (or start with --no-rasa)") from exc
        project.assemble(f"{internal}/api/rasa/actions")  # once, shared by every server
        for i, port in enumerate(self.plan.rasa_ports(), 1):
            url = f"http://127.0.0.1:{port}/status"
            self.children[f"rasa-{i}"] = child = Child(
                f"rasa-{i}",
                project.serve_command(port),
                self.logs / f"rasa-{i}.log",
                env=project.env(),
                cwd=project.build,
                ready=lambda url=url: _http_ok(url),  # type: ignore[misc]
            )
            child.start()

    @property
    def tracker_url(self) -> str:
        if self.settings.rasa_tracker_url:
            return self.settings.rasa_tracker_url
        return self.database_url.rsplit("/", 1)[0] + "/rasa"

    # -- API ------------------------------------------------------------------------------
    def child_env(self, migrate: str = "check") -> dict[str, str]:
        env = {
            **os.environ,
            "BANSHI_ENV": "production",
            "BANSHI_DATA_DIR": str(self.settings.data_dir.resolve()),
            "BANSHI_DATABASE_URL": self.database_url,
            "BANSHI_REDIS_URL": self.redis_url,
            "BANSHI_MIGRATE": migrate,
            "BANSHI_SECRET_KEY": self.secrets["BANSHI_SECRET_KEY"],
            # without Rasa servers nginx has none to offer: chat answers from the KB
            "BANSHI_RASA_URL": f"http://127.0.0.1:{self.plan.internal_port}",
            "BANSHI_RASA_TRACKER_URL": self.tracker_url,
            "BANSHI_TRUSTED_PROXIES": "127.0.0.1",
        }
        env.pop("BANSHI_VOICE_AUDIOSOCKET", None)  # one owner: api-1 (see _start_api)
        return env

    def _start_api(self) -> None:
        line = os.environ.get("BANSHI_VOICE_AUDIOSOCKET", "")
        for i, port in enumerate(self.plan.api_ports(), 1):
            env = self.child_env()
            if line and i == 1:
                env["BANSHI_VOICE_AUDIOSOCKET"] = line  # a TCP port can have one listener
            cmd = [
                sys.executable, "-m", "uvicorn", "--factory", "banshi.app:create_app",
                "--host", "127.0.0.1", "--port", str(port),
                "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
                "--timeout-graceful-shutdown", "10", "--no-access-log",
            ]  # fmt: skip
            url = f"http://127.0.0.1:{port}/healthz"
            self.children[f"api-{i}"] = child = Child(
                f"api-{i}",
                cmd,
                self.logs / f"api-{i}.log",
                env=env,
                ready=lambda url=url: _http_ok(url, below=600),  # type: ignore[misc]
            )
            child.start()
            if i == 1:
                # the first process imports the sample into an empty database and saves the
                # index; the others then load it instead of racing to do the same
                child.wait_ready(600)

    # -- nginx ----------------------------------------------------------------------------
    def _start_nginx(self) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise TopologyError("nginx is not installed: run scripts/production-setup")
        prefix = self.root / "nginx"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (prefix / "temp" / kind).mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:  # nginx's workers drop to nobody
                _own(prefix / "temp" / kind, "nobody")
        layout = NginxLayout(
            api=[f"127.0.0.1:{p}" for p in self.plan.api_ports()],
            # no Rasa servers (--no-rasa): a port with nothing behind it, so the API's Rasa
            # client gets an error at once and answers from the knowledge base
            rasa=[f"127.0.0.1:{p}" for p in self.plan.rasa_ports()]
            if self.plan.rasa
            else ["127.0.0.1:9"],
            public_listen=f"{self.settings.host}:{self.plan.public_port}",
            internal_listen=f"127.0.0.1:{self.plan.internal_port}",
            prefix=str(prefix),
        )
        conf = prefix / "nginx.conf"
        conf.write_text(render(layout))
        test = subprocess.run(
            [binary, "-t", "-q", "-p", str(prefix), "-c", str(conf)],
            capture_output=True,
            text=True,
            check=False,
        )
        if test.returncode != 0:
            raise TopologyError(f"nginx refused its configuration: {test.stderr.strip()}")
        child = Child(
            "nginx",
            [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            self.logs / "nginx.log",
            ready=lambda: _http_ok(f"{self.public_url}/healthz", below=600),
            stop_signal=signal.SIGQUIT,  # graceful: finish the requests in flight
        )
        self.children["nginx"] = child
        child.start()


# -- small helpers ------------------------------------------------------------------------
def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str, below: int = 300) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code < below
    except httpx.HTTPError:
        return False


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        raise TopologyError("PostgreSQL is not installed: run scripts/production-setup")
    return found[-1].parent


def _as(user: str, cmd: list[str], log_path: Path) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = os.geteuid() == 0
    with log_path.open("ab") as out:
        done = subprocess.run(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
            user=user if root else None,
            group=user if root else None,
            extra_groups=[] if root else None,
        )
    if done.returncode != 0:
        raise TopologyError(f"{Path(cmd[0]).name} failed; see {log_path}")


def _own(path: Path, user: str) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def describe(topology: Topology) -> dict[str, Any]:
    """What `banshi serve --production` prints once everything is up."""
    return {
        "url": topology.public_url,
        "processes": {n: c.pid for n, c in topology.children.items()},
        "logs": str(topology.logs),
    }

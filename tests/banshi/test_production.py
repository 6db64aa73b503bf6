"""The production topology's parts that run without the whole topology: nginx's rendered
configuration (checked by the real nginx), the schema check of BANSHI_MIGRATE=check, Rasa's
tracker and lock stores, the secrets file and the supervisor's restarts. The whole topology
under load and faults: tests/e2e/test_production.py."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from assistant.rasa_project import RasaProject, lock_store, tracker_store
from banshi.app import create_app
from banshi.db import Database, SchemaNotCurrent
from banshi.nginx import TOO_MANY, UNAVAILABLE, NginxLayout, render
from banshi.production import Child, Plan, Topology
from banshi.settings import Settings

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _layout(prefix: Path) -> NginxLayout:
    return NginxLayout(
        api=["127.0.0.1:18101", "127.0.0.1:18102"],
        rasa=["127.0.0.1:15101"],
        public_listen="127.0.0.1:18000",
        internal_listen="127.0.0.1:18090",
        prefix=str(prefix),
    )


@pytest.mark.skipif(not Path(NGINX).exists() and not os.environ.get("CI"), reason="no nginx")
def test_nginx_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / "temp" / kind).mkdir(parents=True)
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(_layout(tmp_path)), encoding="utf-8")
    done = subprocess.run(
        [NGINX, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "syntax is ok" in done.stderr


def test_nginx_configuration_spreads_and_guards() -> None:
    text = render(_layout(Path("/srv/banshi")))
    upstream_api = text.split("upstream banshi_api {")[1].split("}")[0]
    assert "server 127.0.0.1:18101" in upstream_api and "server 127.0.0.1:18102" in upstream_api
    assert "server 127.0.0.1:15101" in text.split("upstream banshi_rasa {")[1].split("}")[0]
    public, internal = text.split("listen 127.0.0.1:18000;")[1].split("listen 127.0.0.1:18090;")
    # the custom actions only through the internal server
    assert "location = /api/rasa/actions {\n            return 404;" in public
    assert "location = /api/rasa/actions {\n            proxy_pass http://banshi_api;" in internal
    # residents read nginx's own refusals in Chinese
    assert TOO_MANY in public and UNAVAILABLE in public
    # a request a process never got goes to the next one; POSTs are never sent twice
    assert "proxy_next_upstream error timeout;" in text
    assert "non_idempotent" not in text


def test_nginx_needs_both_kinds_of_upstream() -> None:
    with pytest.raises(ValueError, match="at least one API process"):
        render(NginxLayout(api=[], rasa=["r:5005"], public_listen="80", internal_listen="8090"))


def test_check_mode_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'banshi.db'}"
    db = Database(url)
    with pytest.raises(SchemaNotCurrent, match="run `banshi db upgrade` once for this deploy"):
        db.require_head()
    db.upgrade()
    db.require_head()  # at head: nothing to say
    db.dispose()


def test_api_process_in_check_mode_does_not_migrate(tmp_path: Path) -> None:
    settings = Settings(
        env="test",
        data_dir=tmp_path,
        kb_encoder="hashing",
        migrate="check",
        rasa_url="http://127.0.0.1:9",
    )
    app = create_app(settings)
    with pytest.raises(SchemaNotCurrent), TestClient(app):
        pass
    db = Database(settings.resolved_database_url)
    with db.engine.connect() as conn:  # nothing was created behind the operator's back
        tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='table'").all()
    assert tables == []
    db.dispose()


def test_rasa_stores_for_several_servers(tmp_path: Path) -> None:
    assert tracker_store("", tmp_path) == {
        "type": "SQL",
        "dialect": "sqlite",
        "db": str((tmp_path / "tracker.db").resolve()),
    }
    pg = tracker_store("postgresql+psycopg://banshi:p%40ss@10.0.0.5:5433/rasa", tmp_path)
    assert pg == {
        "type": "SQL",
        "dialect": "postgresql",
        "url": "10.0.0.5",
        "port": 5433,
        "db": "rasa",
        "username": "banshi",
        "password": "p@ss",
        "login_db": "rasa",
    }
    with pytest.raises(ValueError, match="BANSHI_RASA_TRACKER_URL must be postgresql"):
        tracker_store("mysql://x@h/rasa", tmp_path)
    # the lock store takes the Redis database after ours, so keys never mix
    assert lock_store("redis://:s3cret@127.0.0.1:6380/2") == {
        "type": "redis",
        "url": "127.0.0.1",
        "port": 6380,
        "password": "s3cret",
        "db": 3,
        "key_prefix": "rasa",
    }


def test_assembled_rasa_project_carries_the_stores(tmp_path: Path) -> None:
    settings = Settings(
        env="test",
        data_dir=tmp_path,
        redis_url="redis://:pw@127.0.0.1:6380/0",
        rasa_tracker_url="postgresql+psycopg://banshi:pw@127.0.0.1:5433/rasa",
    )
    build = RasaProject(settings).assemble("http://127.0.0.1:8090/api/rasa/actions")
    endpoints = yaml.safe_load((build / "endpoints.yml").read_text(encoding="utf-8"))
    assert endpoints["action_endpoint"]["url"] == "http://127.0.0.1:8090/api/rasa/actions"
    assert endpoints["tracker_store"]["dialect"] == "postgresql"
    assert endpoints["lock_store"]["type"] == "redis"
    alone = RasaProject(Settings(env="test", data_dir=tmp_path / "one")).assemble()
    one = yaml.safe_load((alone / "endpoints.yml").read_text(encoding="utf-8"))
    assert "lock_store" not in one  # one Rasa server: its in-memory lock store is right


def test_secrets_are_made_once_and_kept_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BANSHI_SECRET_KEY", raising=False)
    topology = Topology(Settings(env="test", data_dir=tmp_path))
    topology.root.mkdir(parents=True)
    first = topology._load_secrets()
    assert set(first) == {"BANSHI_SECRET_KEY", "PG_PASSWORD", "REDIS_PASSWORD", "ADMIN_PASSWORD"}
    assert len(set(first.values())) == 4 and all(len(v) >= 24 for v in first.values())
    assert stat.S_IMODE(topology.secrets_file.stat().st_mode) == 0o600
    assert Topology(Settings(env="test", data_dir=tmp_path))._load_secrets() == first
    monkeypatch.setenv("BANSHI_SECRET_KEY", "given-by-the-operator-0123456789")
    given = Topology(Settings(env="test", data_dir=tmp_path))._load_secrets()
    assert given["BANSHI_SECRET_KEY"] == "given-by-the-operator-0123456789"
    assert given["PG_PASSWORD"] == first["PG_PASSWORD"]


def test_api_processes_share_everything_but_the_phone_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BANSHI_VOICE_AUDIOSOCKET", "127.0.0.1:9092")
    topology = Topology(Settings(env="test", data_dir=tmp_path), Plan(postgres_port=5999))
    topology.secrets = {
        n: f"{n.lower()}-x" for n in ("BANSHI_SECRET_KEY", "PG_PASSWORD", "REDIS_PASSWORD")
    }
    env = topology.child_env()
    assert env["BANSHI_ENV"] == "production" and env["BANSHI_MIGRATE"] == "check"
    assert env["BANSHI_DATABASE_URL"] == (
        "postgresql+psycopg://banshi:pg_password-x@127.0.0.1:5999/banshi"
    )
    assert env["BANSHI_RASA_TRACKER_URL"].endswith("@127.0.0.1:5999/rasa")
    assert env["BANSHI_REDIS_URL"] == "redis://:redis_password-x@127.0.0.1:6380/0"
    assert "BANSHI_VOICE_AUDIOSOCKET" not in env  # a TCP port has one listener: api-1's


def test_supervisor_restarts_a_dead_child(tmp_path: Path) -> None:
    child = Child(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "s.log"
    )
    child.start()
    first = child.pid
    assert first is not None
    os.kill(first, 9)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (child.pid in (None, first)):
        child.check()
        time.sleep(0.1)
    assert child.pid not in (None, first) and child.restarts == 1
    assert "exited" not in (tmp_path / "s.log").read_text()  # the log holds the child's output
    assert (tmp_path / "s.log").read_text().count("starting sleeper") == 2
    child.stop()
    assert child.pid is None
    child.check()  # stopped on purpose: not restarted
    assert child.pid is None and child.restarts == 1

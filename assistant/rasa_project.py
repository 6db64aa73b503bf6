"""The Rasa project as built and run from the main environment.

Rasa 3.6 lives in its own virtual environment (scripts/setup-rasa), so everything here
talks to it through its command line. The project under nlu_data/ is assembled into
``data/rasa/project`` with what comes from the catalogue (item synonyms and lookup table,
the jieba dictionary); its fingerprint names the model, so training runs only when
something changed, and a failed training leaves the last good model in place.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from sqlalchemy.engine import make_url

from banshi.settings import Settings
from knowledge_base.source import Catalog, load_folder

PROJECT_SRC = Path(__file__).resolve().parent.parent / "nlu_data"
USERDICT = Path(__file__).resolve().parent.parent / "knowledge_base" / "lexicon" / "userdict.txt"
# The parts that decide what a model is; endpoints and credentials are run-time only.
TRAINING_INPUTS = ("config.yml", "domain.yml", "data", "jieba")
QUESTION_WORDS = (
    "怎么",
    "如何",
    "吗",
    "什么",
    "哪里",
    "多久",
    "多少",
    "啥",
    "有没有",
    "要不要",
    "能不能",
)


def action_token(secret_key: str) -> str:
    """Rasa passes this with every action call (endpoints.yml), so only our Rasa calls in."""
    return hmac.new(secret_key.encode(), b"rasa-actions", hashlib.sha256).hexdigest()[:32]


class RasaUnavailable(RuntimeError):
    """Rasa is not installed, or no model has been trained."""


@dataclass
class RasaProject:
    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.rasa_dir

    @property
    def build(self) -> Path:
        return self.home / "project"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def rasa_bin(self) -> Path:
        return self.settings.rasa_venv / "bin" / "rasa"

    @property
    def python_bin(self) -> Path:
        return self.settings.rasa_venv / "bin" / "python"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RASA_TELEMETRY_ENABLED": "false",  # no calls home from a government network
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "PYTHONWARNINGS": "ignore",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        }

    def require_rasa(self) -> None:
        if not self.rasa_bin.exists():
            raise RasaUnavailable(
                f"Rasa is not installed at {self.settings.rasa_venv}; run scripts/setup-rasa"
            )

    # -- assembling ----------------------------------------------------------------------
    def assemble(self, action_url: str = "") -> Path:
        """Write the project to ``data/rasa/project`` (replaced whole) and return it."""
        catalog = Catalog.load(self.settings.kb_source_dir)
        names = item_names(self.settings.kb_source_dir, catalog)
        fresh = self.home / "project.new"
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        for part in ("config.yml", "domain.yml"):
            shutil.copy2(PROJECT_SRC / part, fresh / part)
        shutil.copytree(PROJECT_SRC / "data", fresh / "data")
        shutil.copytree(PROJECT_SRC / "tests", fresh / "tests")
        (fresh / "data" / "nlu" / "catalogue.yml").write_text(
            catalogue_nlu(names), encoding="utf-8"
        )
        (fresh / "jieba").mkdir()
        # The knowledge base's own dictionary, as is: item aliases such as 办居住证 would
        # glue verbs to names and split annotated entities across tokens.
        shutil.copy2(USERDICT, fresh / "jieba" / "userdict.txt")
        self._write_runtime_files(fresh, action_url)
        shutil.rmtree(self.build, ignore_errors=True)
        fresh.rename(self.build)
        return self.build

    def _write_runtime_files(self, folder: Path, action_url: str) -> None:
        url = action_url or f"http://127.0.0.1:{self.settings.port}/api/rasa/actions"
        endpoints: dict[str, Any] = {
            "action_endpoint": {"url": url, "token": action_token(self.settings.secret_key)},
            # conversations survive a Rasa restart, and with PostgreSQL every Rasa server
            # sees every conversation
            "tracker_store": tracker_store(self.settings.rasa_tracker_url, self.home),
        }
        if self.settings.redis_url:
            # several Rasa servers: a conversation's messages are handled one at a time
            endpoints["lock_store"] = lock_store(self.settings.redis_url)
        (folder / "endpoints.yml").write_text(yaml.safe_dump(endpoints), encoding="utf-8")
        (folder / "credentials.yml").write_text("rest: {}\n", encoding="utf-8")

    def fingerprint(self) -> str:
        digest = hashlib.sha256(b"rasa-3.6.21\n")
        for part in TRAINING_INPUTS:
            path = self.build / part
            files = sorted(path.rglob("*")) if path.is_dir() else [path]
            for f in files:
                if f.is_file():
                    digest.update(str(f.relative_to(self.build)).encode() + b"\0")
                    digest.update(f.read_bytes())
        return digest.hexdigest()[:16]

    # -- models --------------------------------------------------------------------------
    def current_model(self) -> Path | None:
        pointer = self.models / "CURRENT"
        if not pointer.exists():
            return None
        model = self.models / pointer.read_text().strip()
        return model if model.exists() else None

    def train(self, force: bool = False) -> tuple[Path, bool]:
        """Train if the assembled project changed. Returns (model, trained_now)."""
        self.require_rasa()
        self.assemble()
        fp = self.fingerprint()
        target = self.models / f"{fp}.tar.gz"
        if target.exists() and not force:
            self._point_at(target)
            return target, False
        self.models.mkdir(parents=True, exist_ok=True)
        partial = f"training-{fp}"
        cmd = [
            str(self.rasa_bin.absolute()), "train", "--domain", "domain.yml",
            "--config", "config.yml", "--data", "data",
            "--out", str(self.models.resolve()), "--fixed-model-name", partial,
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=self.build, env=self.env(), check=False)
        built = self.models / f"{partial}.tar.gz"
        if done.returncode != 0 or not built.exists():
            built.unlink(missing_ok=True)
            kept = self.current_model()
            raise RuntimeError(
                f"rasa train failed (exit {done.returncode}); "
                f"still serving {kept.name if kept else 'no model'}"
            )
        built.replace(target)
        self._point_at(target)
        self._prune(keep={target.name})
        return target, True

    def _point_at(self, model: Path) -> None:
        tmp = self.models / "CURRENT.tmp"
        tmp.write_text(model.name)
        tmp.replace(self.models / "CURRENT")  # atomic: readers see the old or the new

    def _prune(self, keep: set[str], spare: int = 2) -> None:
        old = sorted(
            (m for m in self.models.glob("*.tar.gz") if m.name not in keep),
            key=lambda m: m.stat().st_mtime,
            reverse=True,
        )
        for m in old[spare:]:
            m.unlink(missing_ok=True)

    def require_model(self) -> Path:
        self.require_rasa()
        model = self.current_model()
        if model is None:
            raise RasaUnavailable("no trained Rasa model; run `banshi rasa train`")
        return model

    # -- running -------------------------------------------------------------------------
    def run_command(self, port: int, action_url: str = "") -> list[str]:
        self.require_model()
        self.assemble(action_url)
        return self.serve_command(port)

    def serve_command(self, port: int, interface: str = "127.0.0.1") -> list[str]:
        """`rasa run` on the assembled project (several servers share one assembly)."""
        model = self.require_model()
        return [
            str(self.rasa_bin.absolute()), "run", "--enable-api", "--model", str(model.resolve()),
            "--endpoints", "endpoints.yml", "--credentials", "credentials.yml",
            "--interface", interface, "--port", str(port),
        ]  # fmt: skip

    def parse_process(self) -> subprocess.Popen[str]:
        """A Rasa-environment process that reads utterances and writes parses (JSONL)."""
        model = self.require_model()
        script = PROJECT_SRC / "tools" / "parse_jsonl.py"
        return subprocess.Popen(
            [str(self.python_bin.absolute()), str(script), str(model.resolve())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=self.env(),
        )

    def rasa(self, *args: str) -> int:
        """Run a rasa subcommand in the assembled project, output to the terminal."""
        self.require_rasa()
        cmd = [str(self.rasa_bin.absolute()), *args]
        return subprocess.run(cmd, cwd=self.build, env=self.env(), check=False).returncode


def tracker_store(url: str, home: Path) -> dict[str, Any]:
    """Rasa's SQL tracker store for a SQLAlchemy URL (empty: a SQLite file in ``home``)."""
    if not url:
        return {"type": "SQL", "dialect": "sqlite", "db": str((home / "tracker.db").resolve())}
    parts = make_url(url)
    if parts.get_backend_name() != "postgresql":
        raise ValueError(f"BANSHI_RASA_TRACKER_URL must be postgresql://…, not {parts.drivername}")
    return {
        "type": "SQL",
        "dialect": "postgresql",  # Rasa's own environment has psycopg2
        "url": parts.host or "127.0.0.1",
        "port": parts.port or 5432,
        "db": parts.database or "rasa",
        "username": parts.username or "",
        "password": parts.password or "",
        "login_db": parts.database or "rasa",
    }


def lock_store(redis_url: str) -> dict[str, Any]:
    """Rasa's Redis lock store, in the database after ours (ours: pub/sub and counters)."""
    parts = urlsplit(redis_url)
    ours = int((parts.path or "/0").strip("/") or 0)
    return {
        "type": "redis",
        "url": parts.hostname or "127.0.0.1",
        "port": parts.port or 6379,
        "password": unquote(parts.password) if parts.password else None,
        "db": ours + 1,
        "key_prefix": "rasa",
    }


def item_names(source_dir: Path, catalog: Catalog) -> dict[str, list[str]]:
    """Item id -> the names residents use for it (catalogue name, guide title, aliases),
    leaving out aliases that are whole questions ("居住证怎么办")."""
    names: dict[str, list[str]] = {i: [item.name] for i, item in catalog.items.items()}
    for doc in load_folder(source_dir, catalog).documents:
        if doc.kind == "guide" and doc.item_id in names:
            for n in [doc.title, *doc.data.get("aliases", [])]:
                short = n.split("（")[0]
                for candidate in (n, short):
                    question = any(q in candidate for q in QUESTION_WORDS)
                    if candidate and not question and candidate not in names[doc.item_id]:
                        names[doc.item_id].append(candidate)
    return names


def catalogue_nlu(names: dict[str, list[str]]) -> str:
    """Synonyms map a named item to its catalogue id; the lookup table feeds the regex
    featurizer. Names shared by two items are left out of the synonyms (ambiguous)."""
    owners: dict[str, set[str]] = {}
    for item_id, ns in names.items():
        for n in ns:
            owners.setdefault(n, set()).add(item_id)
    lines = [
        "# Generated from the catalogue by `banshi rasa train`; do not edit.",
        'version: "3.1"',
        "nlu:",
    ]

    def block(head: str, examples: list[str]) -> None:
        lines.append(head)
        lines.append("  examples: |")
        lines.extend(f"    - {json.dumps(n, ensure_ascii=False)[1:-1]}" for n in examples)

    for item_id, ns in names.items():
        unique = [n for n in ns if len(owners[n]) == 1]
        if unique:
            block(f"- synonym: {item_id}", unique)
    block("- lookup: service_item", sorted(owners))
    return "\n".join(lines) + "\n"


def parse_lines(project: RasaProject, lines: list[str]) -> list[dict[str, Any]]:
    """Parse utterances with the current model (one Rasa process for all of them)."""
    proc = project.parse_process()
    out, _ = proc.communicate(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in lines)
    )
    if proc.returncode != 0:
        print(out, file=sys.stderr)
        raise RuntimeError(f"rasa parse failed (exit {proc.returncode})")
    return [json.loads(line) for line in out.splitlines() if line.strip()]

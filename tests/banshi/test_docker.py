"""docker/ describes the topology of banshi/production.py for containers. These checks read
both sides (no Docker daemon needed) and fail when one changes without the other: the
nginx configuration, the environment of each process, the uvicorn command, the migration
step, how Rasa is installed, run-time packages and secrets."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner

import assistant.rasa_project
from banshi import production
from banshi.cli import main
from banshi.production import SECRET_NAMES, Child, Topology
from banshi.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yml"
SECRET_VALUES = {name: f"test-{name.lower().replace('_', '-')}-0123456789" for name in SECRET_NAMES}
# BANSHI_* names an API service may set beyond Topology.child_env's (none yet: a new one
# is either added to child_env too or listed here with the reason)
API_ONLY_SETTINGS: set[str] = set()
# Debian packages the setup scripts install that the API image leaves out, and why
NOT_IN_API_IMAGE = {"cups-daemon": "the CUPS scheduler runs where the printers are"}
REFERENCE = re.compile(r"\$\{(\w+)([^}]*)\}")


# -- reading docker/ ------------------------------------------------------------------------
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def numbered(kind: str) -> dict[str, dict[str, Any]]:
    """The api-N or rasa-N services, in order of N."""
    found = {
        name: service
        for name, service in compose()["services"].items()
        if re.fullmatch(rf"{kind}-\d+", name)
    }
    assert found, f"compose.yml has no {kind}-N service"
    return dict(sorted(found.items(), key=lambda kv: int(kv[0].rsplit("-", 1)[1])))


def interpolate(value: str) -> str:
    """Compose's ${NAME:?…} with the test's secret values."""
    return REFERENCE.sub(lambda m: SECRET_VALUES.get(m.group(1), m.group(0)), value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment is written as a mapping"
    return {k: interpolate(str(v)) for k, v in env.items()}


def banshi_only(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("BANSHI_")}


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments left out."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in (DOCKER / dockerfile).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    assert not pending, f"{dockerfile} ends in a continuation line"
    return out


def last(dockerfile: str, instruction: str) -> str:
    found = [args for word, args in instructions(dockerfile) if word == instruction]
    assert found, f"{dockerfile} has no {instruction}"
    return found[-1]


def argv(args: str) -> list[str]:
    """CMD's arguments: exec form (JSON) or shell form."""
    return list(json.loads(args)) if args.startswith("[") else shlex.split(args)


def env_of(dockerfile: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in instructions(dockerfile):
        if word == "ENV":
            for pair in shlex.split(args):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def run_commands(dockerfile: str) -> list[list[str]]:
    """Each command of each RUN (split at &&), as arguments."""
    commands: list[list[str]] = []
    for word, args in instructions(dockerfile):
        if word == "RUN":
            commands += [shlex.split(part) for part in args.split("&&") if part.strip()]
    return commands


def options(args: list[str]) -> dict[str, str | None]:
    """--flag value / --flag, as a mapping (a value is whatever follows a flag)."""
    out: dict[str, str | None] = {}
    i = 0
    while i < len(args):
        if args[i].startswith("--"):
            value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None
            out[args[i]] = value
            i += 2 if value is not None else 1
        else:
            i += 1
    return out


def url_parts(url: str) -> tuple[str, str | None, str | None, str]:
    """What must agree between the one-machine URL and the container one (hosts differ)."""
    parts = urlsplit(url)
    return parts.scheme, parts.username, parts.password, parts.path


def uvicorn_args(cmd: list[str]) -> list[str]:
    assert "uvicorn" in cmd and cmd[cmd.index("uvicorn") - 1] == "-m", cmd
    return cmd[cmd.index("uvicorn") + 1 :]


def api_port() -> int:
    port = options(uvicorn_args(argv(last("Dockerfile.api", "CMD"))))["--port"]
    assert port is not None
    return int(port)


def rasa_cmd() -> list[str]:
    return argv(last("Dockerfile.rasa", "CMD"))


def internal_port() -> int:
    """nginx's internal server, as the API services reach Rasa through it."""
    urls = {environment(s)["BANSHI_RASA_URL"] for s in numbered("api").values()}
    assert len(urls) == 1, urls
    parts = urlsplit(urls.pop())
    assert parts.hostname == "nginx" and parts.port, parts
    return parts.port


def address(service: dict[str, Any]) -> str:
    return str(service["networks"]["banshi"]["ipv4_address"])


# -- the one-machine side -------------------------------------------------------------------
@pytest.fixture
def topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Topology:
    """A Topology whose children are made but never started."""
    monkeypatch.setattr(Child, "start", lambda self: None)
    monkeypatch.setattr(Child, "wait_ready", lambda self, timeout_s: None)
    topology = Topology(Settings(data_dir=tmp_path / "data"))
    topology.secrets = dict(SECRET_VALUES)
    return topology


@pytest.fixture
def rasa_started(
    topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> SimpleNamespace:
    """What `_start_rasa` gives its Rasa project: the settings and the action URL."""
    seen = SimpleNamespace(settings=None, action_url=None, ports=[])

    class FakeProject:
        def __init__(self, settings: Settings) -> None:
            seen.settings = settings
            self.build = tmp_path

        def require_model(self) -> Path:
            return tmp_path / "model.tar.gz"

        def assemble(self, action_url: str = "") -> Path:
            seen.action_url = action_url
            return tmp_path

        def serve_command(self, port: int, interface: str = "127.0.0.1") -> list[str]:
            seen.ports.append(port)
            return ["rasa", "run", "--port", str(port)]

        def env(self) -> dict[str, str]:
            return {}

    monkeypatch.setattr(assistant.rasa_project, "RasaProject", FakeProject)
    topology._start_rasa()
    assert seen.settings is not None and seen.action_url
    return seen


# -- nginx ----------------------------------------------------------------------------------
def test_nginx_conf_is_the_cli_output_for_the_compose_services() -> None:
    services = compose()["services"]
    nginx = services["nginx"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in nginx["volumes"]
    published = [str(p) for p in nginx.get("ports", [])]
    assert len(published) == 1, "nginx publishes its public server only"
    public = published[0].rsplit(":", 1)[1]
    rasa_port = options(rasa_cmd())["--port"]
    args = ["production", "nginx-conf"]
    args += [a for name in numbered("api") for a in ("--api", f"{name}:{api_port()}")]
    args += [a for name in numbered("rasa") for a in ("--rasa", f"{name}:{rasa_port}")]
    args += ["--listen", public, "--internal-listen", str(internal_port())]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (DOCKER / "nginx.conf").read_text(encoding="utf-8") == result.output, (
        "docker/nginx.conf is stale; regenerate it: .venv/bin/banshi " + shlex.join(args)
    )


def test_only_nginx_publishes_ports() -> None:
    for name, service in compose()["services"].items():
        if name != "nginx":
            assert not service.get("ports"), f"{name} publishes {service['ports']}"


# -- settings -------------------------------------------------------------------------------
def test_every_banshi_variable_in_docker_is_a_setting() -> None:
    fields = {f"BANSHI_{name.upper()}" for name in Settings.model_fields}
    files = [COMPOSE, DOCKER / "Dockerfile.api", DOCKER / "Dockerfile.rasa"]
    files += [DOCKER / "env.example", DOCKER / "README.md"]
    for path in files:
        for match in re.finditer(r"\bBANSHI_[A-Z0-9_]*[A-Z0-9](_\*)?", path.read_text("utf-8")):
            name = match.group(0)
            if name.endswith("_*"):  # BANSHI_WECHAT_*: a family of settings
                assert any(f.startswith(name[:-1]) for f in fields), f"{path.name}: {name}"
            else:
                assert name in fields, f"{path.name} names {name}, which is no setting"


def test_api_services_get_what_child_env_gives_the_api_processes(topology: Topology) -> None:
    child = banshi_only(topology.child_env())
    services = compose()["services"]
    data_dir = env_of("Dockerfile.api")["BANSHI_DATA_DIR"]
    for name, service in numbered("api").items():
        env = banshi_only(environment(service))
        assert set(env) - API_ONLY_SETTINGS == set(child), name
        for same in ("BANSHI_ENV", "BANSHI_MIGRATE", "BANSHI_SECRET_KEY"):
            assert env[same] == child[same], f"{name} {same}"
        assert env["BANSHI_ENV"] == "production" and env["BANSHI_MIGRATE"] == "check"
        for url in ("BANSHI_DATABASE_URL", "BANSHI_REDIS_URL", "BANSHI_RASA_TRACKER_URL"):
            assert url_parts(env[url]) == url_parts(child[url]), f"{name} {url}"
            assert urlsplit(env[url]).hostname in services, f"{name} {url}: no such service"
        rasa = urlsplit(env["BANSHI_RASA_URL"])
        assert (rasa.port, rasa.path) == (
            topology.plan.internal_port,
            urlsplit(child["BANSHI_RASA_URL"]).path,
        )
        # one machine: nginx on loopback, so 127.0.0.1; here nginx's fixed address
        assert child["BANSHI_TRUSTED_PROXIES"] == "127.0.0.1"
        assert env["BANSHI_TRUSTED_PROXIES"] == address(services["nginx"]), name
        assert env["BANSHI_DATA_DIR"] == data_dir, name
        assert f"banshi-data:{data_dir}" in service["volumes"], f"{name}: the shared data volume"
        assert service["build"]["dockerfile"] == "docker/Dockerfile.api", name
        assert service["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, name
    assert "banshi-data" in compose()["volumes"]


def test_migrate_service_runs_what_production_migrates(
    topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[tuple[list[str], dict[str, str], bytes | None]] = []

    def run(cmd: list[str], env: dict[str, str], **kw: Any) -> SimpleNamespace:
        runs.append((cmd, env, kw.get("input")))
        return SimpleNamespace(returncode=0)

    monkeypatch.setattr(production.subprocess, "run", run)
    topology._migrate()
    migrate = compose()["services"]["migrate"]
    steps = []
    for cmd, _, given in runs:
        step = shlex.join([Path(cmd[0]).name, *cmd[1:]])
        if given is not None:  # a secret on standard input: from the container's environment
            (name,) = [n for n, v in SECRET_VALUES.items() if given == f"{v}\n".encode()]
            assert migrate["environment"][name].startswith(f"${{{name}:?"), name
            step = f"printf '%s\\n' \"${name}\" | {step}"
        steps.append(step)
    command = [str(a) for a in migrate["command"]]
    # in compose.yml $$ is a $ for the container's shell
    actual = command[2].replace("$$", "$") if command[:2] == ["sh", "-c"] else shlex.join(command)
    assert actual == " && ".join(steps)
    child = banshi_only(runs[0][1])
    env = banshi_only(environment(migrate))
    assert set(env) == set(child)
    assert env["BANSHI_MIGRATE"] == child["BANSHI_MIGRATE"] == "auto"
    for url in ("BANSHI_DATABASE_URL", "BANSHI_REDIS_URL", "BANSHI_RASA_TRACKER_URL"):
        assert url_parts(env[url]) == url_parts(child[url]), url
    assert migrate["build"] == numbered("api")["api-1"]["build"]
    assert migrate["image"] == numbered("api")["api-1"]["image"]


def test_rasa_services_get_what_production_gives_rasa(
    topology: Topology, rasa_started: SimpleNamespace
) -> None:
    given = rasa_started.settings.model_dump()
    base = topology.settings.model_dump()
    changed = {f"BANSHI_{k.upper()}": v for k, v in given.items() if v != base[k]}
    assert set(changed) == {"BANSHI_REDIS_URL", "BANSHI_RASA_TRACKER_URL", "BANSHI_SECRET_KEY"}
    for name, service in numbered("rasa").items():
        env = banshi_only(environment(service))
        assert set(changed) <= set(env), name
        assert env["BANSHI_SECRET_KEY"] == changed["BANSHI_SECRET_KEY"]
        for url in ("BANSHI_REDIS_URL", "BANSHI_RASA_TRACKER_URL"):
            assert url_parts(env[url]) == url_parts(changed[url]), f"{name} {url}"
        assert service["build"]["dockerfile"] == "docker/Dockerfile.rasa", name
    # the API and Rasa containers meet the same stores
    api_env = environment(numbered("api")["api-1"])
    for name, service in numbered("rasa").items():
        for same in ("BANSHI_REDIS_URL", "BANSHI_RASA_TRACKER_URL", "BANSHI_SECRET_KEY"):
            assert environment(service)[same] == api_env[same], f"{name} {same}"


def test_rasa_image_serves_as_production_does(rasa_started: SimpleNamespace) -> None:
    cmd = rasa_cmd()
    assert cmd[:3] == ["banshi", "rasa", "serve"], cmd
    opts = options(cmd[3:])
    assert set(opts) == {"--port", "--interface", "--action-url"}
    assert opts["--interface"] == "0.0.0.0"
    # production: the internal nginx on loopback; here the nginx service, same port and path
    production_url = urlsplit(rasa_started.action_url)
    url = urlsplit(str(opts["--action-url"]))
    assert url.hostname == "nginx" and "nginx" in compose()["services"]
    assert url.port == production_url.port == internal_port()
    assert url.path == production_url.path == "/api/rasa/actions"
    env = env_of("Dockerfile.rasa")
    assert Path(env["BANSHI_RASA_VENV"], "bin", "python").as_posix().startswith("/opt/rasa/")
    assert "BANSHI_DATA_DIR" in env
    trains = [c for c in run_commands("Dockerfile.rasa") if c[-3:] == ["banshi", "rasa", "train"]]
    assert trains, "the model is trained while the image is built"
    assert last("Dockerfile.rasa", "USER") != "root"


# -- the API image -----------------------------------------------------------------------------
def test_uvicorn_command_matches_production(topology: Topology) -> None:
    topology._start_api()
    one_machine = topology.children["api-1"].cmd
    container = argv(last("Dockerfile.api", "CMD"))
    assert one_machine[:3] == [sys.executable, "-m", "uvicorn"]
    assert container[:4] == ["exec", "python", "-m", "uvicorn"], (
        "shell form with exec, so that uvicorn itself gets the container's SIGTERM"
    )
    mine, image = options(uvicorn_args(one_machine)), options(uvicorn_args(container))
    placed = {"--host", "--port", "--forwarded-allow-ips"}
    assert set(image) == set(mine)
    assert {k: v for k, v in image.items() if k not in placed} == {
        k: v for k, v in mine.items() if k not in placed
    }
    assert image["--host"] == "0.0.0.0"
    # uvicorn trusts the same proxies as the app's limits, on both sides
    assert mine["--forwarded-allow-ips"] == topology.child_env()["BANSHI_TRUSTED_PROXIES"]
    trusted = re.fullmatch(
        r"\$\{BANSHI_TRUSTED_PROXIES(?::-([^}]*))?\}", str(image["--forwarded-allow-ips"])
    )
    assert trusted, image["--forwarded-allow-ips"]
    assert trusted.group(1) in (None, Settings().trusted_proxies)
    health = last("Dockerfile.api", "HEALTHCHECK")
    assert f"http://127.0.0.1:{api_port()}/healthz" in health
    assert str(api_port()) in last("Dockerfile.api", "EXPOSE").split()


def test_api_image_installs_what_the_setup_scripts_install() -> None:
    setup = (ROOT / "scripts" / "setup").read_text(encoding="utf-8")
    extras = re.search(r"^extras=([\w,]+)$", setup, re.M)
    assert extras
    installs = [c for c in run_commands("Dockerfile.api") if c[-2:-1] == ["install"]]
    image_extras = {
        e
        for c in installs
        for m in [re.fullmatch(r"\.\[([\w,]+)\]", c[-1])]
        if m
        for e in m.group(1).split(",")
    }
    assert image_extras == set(extras.group(1).split(","))
    forms = re.search(r"^packages=\(([^)]*)\)", (ROOT / "scripts/forms-setup").read_text(), re.M)
    voice = re.findall(
        r"install -y --no-install-recommends ([\w.+-]+)", (ROOT / "scripts/voice-setup").read_text()
    )
    assert forms and voice
    needed = (set(forms.group(1).split()) | set(voice)) - set(NOT_IN_API_IMAGE)
    apt = {
        a for c in run_commands("Dockerfile.api") if "apt-get" in c and "install" in c for a in c
    }
    assert needed <= apt, f"Dockerfile.api lacks {needed - apt}"


def test_images_are_python_3_11_and_run_as_a_user() -> None:
    for dockerfile in ("Dockerfile.api", "Dockerfile.rasa"):
        base = [
            a for w, a in instructions(dockerfile) if w == "ARG" and a.startswith("PYTHON_IMAGE=")
        ]
        assert base == ["PYTHON_IMAGE=python:3.11-slim-bookworm"], dockerfile
        froms = [a.split()[0] for w, a in instructions(dockerfile) if w == "FROM"]
        assert froms and set(froms) == {"${PYTHON_IMAGE}"}, dockerfile
        assert last(dockerfile, "USER") not in ("root", "0"), dockerfile
        assert "HEALTHCHECK" in {w for w, _ in instructions(dockerfile)}, dockerfile


# -- Rasa's environment ------------------------------------------------------------------------
def test_rasa_image_installs_rasa_as_setup_rasa() -> None:
    script = (ROOT / "scripts" / "setup-rasa").read_text(encoding="utf-8")
    theirs = [
        shlex.split(line)[2:] for line in script.splitlines() if line.startswith("pip install ")
    ]
    venv = env_of("Dockerfile.rasa")["BANSHI_RASA_VENV"]
    ours = [
        c[c.index("install") + 1 :]
        for c in run_commands("Dockerfile.rasa")
        if c[:4] == [f"{venv}/bin/python", "-m", "pip", "install"]
    ]
    assert theirs and ours == theirs
    assert theirs[0][:2] == ["-c", "nlu_data/env/constraints.txt"]
    copied = [a for w, a in instructions("Dockerfile.rasa") if w == "COPY"]
    assert "nlu_data/env nlu_data/env" in copied


# -- secrets -----------------------------------------------------------------------------------
def test_secrets_are_never_defaulted() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    services = compose()["services"]
    for name in SECRET_NAMES:
        # compose's own interpolation ($$ is a literal $ for the container's shell)
        uses = re.findall(rf"(?<!\$)\$(\{{{name}\b[^}}]*\}}|{name}\b)", text)
        assert uses, f"compose.yml does not use {name}"
        for use in uses:
            assert re.fullmatch(rf"\{{{name}:\?[^}}]+\}}", use), f"${use}: must be ${{{name}:?…}}"
        # the container's shell reads it from the service's environment
        for service_name, service in services.items():
            if f"$${name}" in json.dumps(service.get("command", "")):
                assert str(service["environment"][name]).startswith(f"${{{name}:?"), service_name


def test_env_example_lists_every_variable_compose_needs() -> None:
    used = {m.group(1) for m in REFERENCE.finditer(COMPOSE.read_text(encoding="utf-8"))}
    listed: dict[str, str] = {}
    for line in (DOCKER / "env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            listed[name.strip()] = value.strip()
    assert set(listed) == used
    assert set(SECRET_NAMES) <= used
    for name in SECRET_NAMES:
        assert listed[name] == "", f"env.example must not carry a value for {name}"


def test_private_files_stay_out_of_images_and_git() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for entry in (".git", ".venv*", "data", ".test-data", ".pgtest", "docker/.env"):
        assert entry in ignored, f".dockerignore lacks {entry}"
    assert ".env" in (DOCKER / ".gitignore").read_text(encoding="utf-8").split()


# -- the network -------------------------------------------------------------------------------
def test_fixed_addresses_are_inside_the_network_and_outside_its_pool() -> None:
    (config,) = compose()["networks"]["banshi"]["ipam"]["config"]
    subnet = ipaddress.ip_network(config["subnet"])
    pool = ipaddress.ip_network(config["ip_range"])
    services = compose()["services"]
    fixed = {n: services[n] for n in ["nginx", *numbered("api"), *numbered("rasa")]}
    addresses = {n: ipaddress.ip_address(address(s)) for n, s in fixed.items()}
    assert len(set(addresses.values())) == len(addresses), addresses
    for name, ip in addresses.items():
        assert ip in subnet and ip not in pool, f"{name} {ip}"
    for name, service in services.items():
        assert "banshi" in service["networks"], f"{name} is not on the banshi network"


# -- compose itself, when a compose client is installed --------------------------------------
def _compose_client() -> list[str] | None:
    """`docker compose` (the plugin), else the older standalone `docker-compose`."""
    if shutil.which("docker"):
        version = subprocess.run(["docker", "compose", "version"], capture_output=True)
        if version.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


@pytest.mark.skipif(_compose_client() is None, reason="no docker compose client is installed")
def test_docker_compose_accepts_the_file_and_refuses_missing_secrets(tmp_path: Path) -> None:
    client = _compose_client()
    assert client is not None
    empty = tmp_path / "empty.env"  # instead of docker/.env, which a developer may have
    empty.write_text("")
    cmd = [*client, "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q"]
    base = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES}
    done = subprocess.run(cmd, env={**base, **SECRET_VALUES}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    refused = subprocess.run(cmd, env=base, capture_output=True, text=True)
    assert refused.returncode != 0
    assert any(name in refused.stderr for name in SECRET_NAMES), refused.stderr

"""The container files and the settings reference, checked without a Docker engine.

The image's commands are run here as the image would run them: the same console script,
the same arguments, the same health check. The linters run when they are installed (the
test extra installs them).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from event_manager import cli
from event_manager.config import Settings, env_name, settings_reference
from tests.conftest import free_port, run_cli, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SETTING_NAMES = {env_name(field) for field in Settings.model_fields}
BIN = Path(sys.executable).parent


def instructions(text: str) -> list[tuple[str, str]]:
    """A Dockerfile's instructions as ``(KEYWORD, arguments)``, continuations joined."""
    found, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            keyword, _, arguments = current.strip().partition(" ")
            found.append((keyword.upper(), " ".join(arguments.split())))
        current = ""
    return found


def stages() -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, ``FROM`` first."""
    result: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            result.append([])
        result[-1].append((keyword, arguments))
    return result


def final(keyword: str) -> list[str]:
    return [arguments for k, arguments in stages()[-1] if k == keyword]


def healthcheck_command() -> list[str]:
    (arguments,) = final("HEALTHCHECK")
    _, _, command = arguments.partition(" CMD ")
    return json.loads(command)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def dockerignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that
    matches the path or one of its parents decides, ``!`` taking the path back in."""
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        regex = glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Go's ``filepath.Match`` syntax as Docker extends it: ``**`` crosses folders."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i:end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def tool(name: str) -> str:
    """The linter ``name`` from the virtualenv or PATH; skipped when it is not installed."""
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


# --- Dockerfile ------------------------------------------------------------------------


def test_image_is_built_in_stages_from_slim_python_311() -> None:
    bases = [stage[0][1].split()[0] for stage in stages()]
    assert len(bases) >= 2
    assert all(re.fullmatch(r"python:3\.11-slim(-\w+)?", base) for base in bases), bases


def test_image_runs_as_a_user_that_is_not_root() -> None:
    (user,) = final("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, user


def build_sources() -> set[str]:
    """What ``pip install .`` needs: pyproject.toml, the readme and the top-level package
    folders (``event_manager.console`` lives in ``event_manager``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {name.split(".")[0] for name in project["tool"]["setuptools"]["packages"]}
    return {*packages, "pyproject.toml", project["project"]["readme"]}


def test_image_copies_the_package_and_nothing_else() -> None:
    runtime = build_sources()
    copied = set()
    for stage in stages():
        for keyword, arguments in stage:
            if keyword in ("COPY", "ADD") and "--from=" not in arguments:
                assert keyword == "COPY", arguments
                copied.update(p.rstrip("/") for p in arguments.split()[:-1])
    assert copied == runtime
    assert not [path for path in copied if dockerignored(path)]
    assert all("--from=" in arguments for arguments in final("COPY"))


def test_dockerignore_keeps_local_state_and_tests_out() -> None:
    for path in [".state", ".state/admin.key", ".venv", ".venv/bin/python", "tests",
                 "tests/conftest.py", ".git", "bench", ".ruff_cache", "build",
                 "event_manager.egg-info", "dispatch/__pycache__/actors.cpython-311.pyc",
                 "Dockerfile", "docker-compose.yml"]:
        assert dockerignored(path), path
    for path in ["pyproject.toml", "README.md", "event_manager/cli.py", "dispatch/actors.py"]:
        assert not dockerignored(path), path


def test_image_entry_point_is_the_cli_and_serves_by_default() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (command,) = final("CMD")
    assert json.loads(entrypoint) == ["event-manager"]
    assert json.loads(command) == ["serve", "--host", "0.0.0.0"]


def test_health_check_asks_the_port_that_serve_binds() -> None:
    """The default CMD binds serve's default port; EXPOSE and the health check agree."""
    command = healthcheck_command()
    assert command[0] == "python"  # no curl in a slim image
    (port,) = re.findall(r"http://127\.0\.0\.1:(\d+)/healthz", " ".join(command))
    assert final("EXPOSE") == [port]
    assert inspect.signature(cli.serve).parameters["port"].default == int(port)


def test_image_commands_serve_and_the_health_check_passes(env: dict[str, str]) -> None:
    """ENTRYPOINT + CMD run here (on loopback, a free port), and the HEALTHCHECK's exact
    command answers 0 while the API runs and non-zero once it has stopped."""
    (entrypoint,) = final("ENTRYPOINT")
    (command,) = final("CMD")
    args = [*json.loads(entrypoint), *json.loads(command)]
    args[args.index("0.0.0.0")] = "127.0.0.1"
    port = free_port()
    local = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    api = subprocess.Popen([*args, "--port", str(port)], env=local,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check = [part.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
             for part in healthcheck_command()]

    def healthy() -> bool:
        return subprocess.run(check, env=local, capture_output=True, timeout=10).returncode == 0

    try:
        assert wait_until(healthy, timeout=30, interval=0.2), "the health check never passed"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text == "ok"
    finally:
        api.terminate()
        api.wait(timeout=30)
    assert not healthy()


def test_compose_worker_command_exists(env: dict[str, str]) -> None:
    (entrypoint,) = final("ENTRYPOINT")
    command = compose()["services"]["worker"]["command"]
    script = shutil.which(json.loads(entrypoint)[0], path=str(BIN))
    assert script is not None
    result = subprocess.run([script, *command, "--help"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--threads" in result.stdout and "--processes" in result.stdout


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([tool("hadolint"), "--no-color", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


# --- The wheel --------------------------------------------------------------------------

CONSOLE_FILES = sorted(path.relative_to(ROOT).as_posix()
                       for path in (ROOT / "event_manager" / "console").rglob("*")
                       if path.suffix in (".html", ".js", ".css"))
GRAPHIQL_ASSETS = sorted(path.name for path in (ROOT / "event_manager" / "graphiql" / "assets")
                         .iterdir())


@dataclass(frozen=True)
class Wheel:
    path: Path
    output: str
    """What ``pip wheel -v`` printed: setuptools' own messages included."""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The project built as a wheel from a copy of what the image builds from (so no
    build/ folder appears in the working tree), as ``pip wheel --no-deps`` builds it."""
    source, dist = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for name in build_sources():
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(ROOT / name, source / name)
    # PYTHONDONTWRITEBYTECODE makes setuptools say "byte-compiling is disabled, skipping".
    quiet = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v",
                             "--disable-pip-version-check", "-w", str(dist), str(source)],
                            env=quiet, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = dist.glob("event_manager-*.whl")
    return Wheel(built, result.stdout + result.stderr)


def test_the_wheel_builds_without_warnings_and_holds_the_console(wheel: Wheel) -> None:
    """setuptools warned ~70 lines of "Package 'event_manager.console' is absent from
    the `packages` configuration" (and of its pages/ and ferretdb/) at every install."""
    assert [line for line in wheel.output.splitlines() if "warning" in line.lower()] == []
    with zipfile.ZipFile(wheel.path) as archive:
        names = set(archive.namelist())
    assert "event_manager/console/index.html" in CONSOLE_FILES
    assert "event_manager/console/pages/imports.js" in CONSOLE_FILES
    assert set(CONSOLE_FILES) <= names
    assert {f"event_manager/ferretdb/{path.name}"
            for path in (ROOT / "event_manager" / "ferretdb").glob("*.go")} <= names
    assert "graphiql-3.8.3.min.js" in GRAPHIQL_ASSETS
    assert {"event_manager/graphiql/index.html",
            *(f"event_manager/graphiql/assets/{name}" for name in GRAPHIQL_ASSETS)} <= names


def test_the_wheel_installed_in_a_fresh_venv_serves_the_console(
        wheel: Wheel, env: dict[str, str], tmp_path: Path) -> None:
    """Not an editable install: the API runs from the venv's site-packages, away from
    the working tree, and answers / and every console file as the tree holds it, and
    GraphiQL's page and files."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                                "--disable-pip-version-check", str(wheel.path)],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import event_manager.console as c; print(c.FILES)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60,
                           check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    port = free_port()
    api = subprocess.Popen([str(venv / "bin" / "event-manager"), "serve", "--host",
                            "127.0.0.1", "--port", str(port)], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        assert wait_until(healthy, timeout=60, interval=0.2), "the API never answered"
        page = httpx.get(f"{base}/", timeout=10)
        assert page.status_code == 200
        assert page.content == (ROOT / "event_manager" / "console" / "index.html").read_bytes()
        for name in CONSOLE_FILES:
            served = httpx.get(f"{base}/console/{name.removeprefix('event_manager/console/')}",
                               timeout=10)
            assert (served.status_code, served.content) == (200, (ROOT / name).read_bytes())
        assert "/graphql/assets/" in httpx.get(f"{base}/graphql", timeout=10,
                                               headers={"Accept": "text/html"}).text
        for name in GRAPHIQL_ASSETS:  # GraphiQL, served with no internet (issue 17, 1)
            served = httpx.get(f"{base}/graphql/assets/{name}", timeout=10)
            local = ROOT / "event_manager" / "graphiql" / "assets" / name
            assert (served.status_code, served.content) == (200, local.read_bytes()), name
    finally:
        api.terminate()
        api.wait(timeout=30)


# --- docker-compose.yml -----------------------------------------------------------------


def test_compose_file_matches_the_compose_spec() -> None:
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema",
                             "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_accepts_the_file() -> None:
    """Where Docker's own Compose (v2) is installed, it must accept the file too."""
    docker = tool("docker")
    if subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose (v2) is not installed")
    for profile in ([], ["--profile", "rabbitmq"]):
        result = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE), *profile, "config", "--quiet"],
            env={**os.environ, "EVENT_MANAGER_SECRET_KEY": "k" * 32},
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr


def test_compose_passes_every_setting_by_its_real_name() -> None:
    """Every EVENT_MANAGER_* name in the deployment files is a setting, and the API and the
    worker get the same ones, all but the state folder (the image sets it)."""
    image_env = {part.split("=", 1)[0] for arguments in final("ENV")
                 for part in arguments.split() if part.startswith("EVENT_MANAGER_")}
    assert image_env == {"EVENT_MANAGER_STATE_DIR"}
    services = compose()["services"]
    for name, service in services.items():
        unknown = {key for key in service.get("environment", {})
                   if key.startswith("EVENT_MANAGER_")} - SETTING_NAMES
        assert not unknown, f"{name} sets {unknown}, which Settings does not read"
    api, worker = services["api"]["environment"], services["worker"]["environment"]
    assert api == worker
    assert {key for key in api if key.startswith("EVENT_MANAGER_")} == SETTING_NAMES - image_env
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in api, "tracing is turned on from the shell"


def test_compose_starts_api_and_worker_after_healthy_services() -> None:
    services = compose()["services"]
    assert "command" not in services["api"]  # the image's default: serve --host 0.0.0.0
    assert services["worker"]["command"][0] == "worker"
    assert services["worker"]["healthcheck"] == {"disable": True}  # it serves no HTTP
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert set(depends) == {"mongodb", "redis", "rabbitmq"}
        for dependency, rule in depends.items():
            assert rule["condition"] == "service_healthy"
            assert services[dependency]["healthcheck"]["test"][0] == "CMD"
        assert depends["rabbitmq"]["required"] is False
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
    assert services["mongodb"]["image"] == "mongo:7"
    assert services["api"]["environment"]["EVENT_MANAGER_BROKER_URL"].startswith(
        "${EVENT_MANAGER_BROKER_URL:-redis://")


# --- event-manager config ---------------------------------------------------------------


def test_config_prints_every_setting_with_secrets_hidden(env: dict[str, str]) -> None:
    secrets = {
        "EVENT_MANAGER_SECRET_KEY": "a-very-secret-key-of-at-least-32-characters",
        "EVENT_MANAGER_REDIS_URL": "redis://:redis-pw@127.0.0.1:6379/0",
        "EVENT_MANAGER_BROKER_URL": "amqp://em:amqp-pw@rabbitmq:5672/",
    }
    environment = {k: v for k, v in env.items() if k != "EVENT_MANAGER_LOG_LEVEL"}
    result = run_cli({**environment, **secrets}, "config")
    lines = {line.split("=", 1)[0]: line for line in result.stdout.splitlines()}
    assert set(lines) == SETTING_NAMES
    for secret in ("a-very-secret-key", "redis-pw", "amqp-pw"):
        assert secret not in result.stdout
    assert re.fullmatch(r"EVENT_MANAGER_SECRET_KEY=\*{8} +# environment",
                        lines["EVENT_MANAGER_SECRET_KEY"])
    assert "redis://:********@127.0.0.1:6379/0" in lines["EVENT_MANAGER_REDIS_URL"]
    assert "amqp://em:********@rabbitmq:5672/" in lines["EVENT_MANAGER_BROKER_URL"]
    assert re.fullmatch(rf"EVENT_MANAGER_DATABASE={env['EVENT_MANAGER_DATABASE']} +# environment",
                        lines["EVENT_MANAGER_DATABASE"])
    assert re.fullmatch(r"EVENT_MANAGER_LOG_LEVEL=INFO +# default",
                        lines["EVENT_MANAGER_LOG_LEVEL"])


@pytest.mark.parametrize("value, shown", [
    ("mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017"),
    ("mongodb://app:p@ss@m1:27017,m2:27017/db?replicaSet=rs0&authSource=admin",
     "mongodb://app:********@m1:27017,m2:27017/db?replicaSet=rs0&authSource=admin"),
    ("mongodb://m1/?tls=true&tlsCertificateKeyFilePassword=pw",
     "mongodb://m1/?tls=true&tlsCertificateKeyFilePassword=********"),
    ("redis://:pw@redis:6379/0", "redis://:********@redis:6379/0"),
    ("redis://user@redis:6379/0", "redis://user@redis:6379/0"),
    ("amqps://em:pw@rabbitmq:5671/%2F", "amqps://em:********@rabbitmq:5671/%2F"),
    ("5,30,120", "5,30,120"),
])
def test_config_hides_passwords_inside_urls(value: str, shown: str) -> None:
    assert cli.shown_setting("mongodb_url", value) == shown


def test_config_reports_a_bad_setting_in_one_line(env: dict[str, str]) -> None:
    result = run_cli({**env, "EVENT_MANAGER_LOG_FORMAT": "xml"}, "config", check=False)
    assert result.returncode == 1
    assert "EVENT_MANAGER_LOG_FORMAT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# --- the settings reference -------------------------------------------------------------


def test_settings_reference_has_a_described_row_per_setting() -> None:
    rows = settings_reference().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == [env_name(f) for f in Settings.model_fields]
    assert all(field.description for field in Settings.model_fields.values())


def test_readme_settings_table_is_the_generated_one(env: dict[str, str]) -> None:
    """Regenerate with ``event-manager config --markdown`` when a setting changes."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = "".join(line + "\n" for line in section.splitlines() if line.startswith("|"))
    assert table == settings_reference()
    assert run_cli(env, "config", "--markdown").stdout == settings_reference()

"""What can be checked of the container deliverables without a Docker engine: the files parse, every
command they run is one this code base has, and everything the image copies exists."""

import asyncio
import re
import subprocess
import sys
import tomllib

import yaml

from tests.support.paths import ROOT
from workers.__main__ import ROLES


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_resultbus_service_runs_a_real_command() -> None:
    services = compose()["services"]
    commands = {name: s["command"] for name, s in services.items() if "command" in s}
    assert {"migrate", "ingress", "router"} <= set(commands)
    for name, command in commands.items():
        assert command[:2] == ["python", "-m"], name
        module = command[2]
        assert module in {"ingress", "workers", "admin"}, name
        if module == "workers":
            assert command[3] in {*ROLES, "migrate"}, name


def test_services_start_in_order() -> None:
    services = compose()["services"]
    assert services["router"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["ingress"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    for env_file in services["router"]["env_file"]:
        assert (ROOT / env_file).is_file()


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_the_image_command_works_here() -> None:
    # The image's default command with a bad setting: it must start and stop with a clear message.
    result = subprocess.run(
        [sys.executable, "-m", "ingress"],
        env={"RESULTBUS_INGRESS_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 2 and "RESULTBUS_INGRESS_PORT" in result.stderr


LONG_RUNNING = ("ingress", "router", "delivery", "checker", "admin")


def test_every_process_has_a_health_endpoint_and_a_healthcheck() -> None:
    services = compose()["services"]
    for name in LONG_RUNNING:
        service = services[name]
        env = service["environment"]
        assert env["RESULTBUS_METRICS_HOST"] == "0.0.0.0" and env["RESULTBUS_METRICS_PORT"] == "9100", name
        test = service["healthcheck"]["test"]
        assert test[:4] == ["CMD", "python", "-m", "common.probe"] and test[4] in {"healthz", "readyz"}, name
    # What a dependent or a load balancer waits for: the HTTP servers' readiness.
    assert services["ingress"]["healthcheck"]["test"][-1] == "readyz"
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "common.probe", "healthz"]' in dockerfile
    assert "RESULTBUS_METRICS_HOST=0.0.0.0" in dockerfile and "RESULTBUS_METRICS_PORT=9100" in dockerfile


def test_only_what_a_user_needs_is_published() -> None:
    published = {
        name: [str(p) for p in s.get("ports", [])]
        for name, s in compose()["services"].items()
        if s.get("ports")
    }
    assert published == {
        "rabbitmq": ["127.0.0.1:15673:15672"],
        "ingress": ["8080:8080"],
        "admin": ["127.0.0.1:8081:8081"],
    }


def test_the_image_runs_as_a_numeric_user_and_copies_every_package() -> None:
    lines = (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
    [user] = [line for line in lines if line.startswith("USER ")]
    assert all(part.isdigit() for part in user.removeprefix("USER ").split(":")), user  # hadolint DL3066
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert {p.rstrip("*") for p in packages["include"]} <= copied


def test_the_build_context_leaves_out_environments_history_and_caches() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv/", ".git", "**/__pycache__/", ".mypy_cache/", ".pytest_cache/", ".ruff_cache/"} <= ignored
    copied = {
        line.split()[1]
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert not copied & {entry.rstrip("/") for entry in ignored}, "the image copies something ignored"


def test_the_readme_says_what_compose_runs() -> None:
    services = compose()["services"]
    words = {1: "one", 2: "two", 3: "three", 4: "four"}
    readme = (ROOT / "README.md").read_text()
    paragraph = readme[readme.index("## Running it in containers") :].split("\n\n")[1]
    for name, plural in (("router", "routers"), ("delivery", "delivery workers")):
        replicas = services[name].get("deploy", {}).get("replicas", 1)
        assert f"{words[replicas]} {plural}" in " ".join(paragraph.split()), name


async def test_the_probe_answers_as_the_health_listener_does() -> None:
    from common.probe import probe
    from common.service import Service, running
    from common.settings import ProcessSettings
    from tests.support.ports import free_port

    port = free_port()
    env = {"RESULTBUS_METRICS_PORT": str(port), "RESULTBUS_METRICS_HOST": "0.0.0.0"}
    assert probe({}) == "RESULTBUS_METRICS_PORT is not set: this process serves no health endpoint"
    assert (probe(env) or "").startswith(f"http://127.0.0.1:{port}/healthz: ")  # nothing listening

    async def start(service: Service, _: None) -> None:
        service.ready_when(lambda: False)

    async with running("probe-test", None, start, ProcessSettings(metrics_port=port)):
        assert await asyncio.to_thread(probe, env, "healthz") is None
        assert await asyncio.to_thread(probe, env, "readyz") == f"http://127.0.0.1:{port}/readyz: 503"


def test_make_test_installs_the_validators_it_checks_with() -> None:
    makefile = (ROOT / "Makefile").read_text()
    [prerequisites] = re.findall(r"^test:(.*)$", makefile, re.M)
    assert "tools" in prerequisites.split() and prerequisites.split().index(
        "tools"
    ) < prerequisites.split().index("pytest")
    [recipe] = re.findall(r"^tools:\n\t(.*)$", makefile, re.M)
    assert recipe == "bash deploy/install-tools.sh"
    readme = (ROOT / "README.md").read_text()
    assert "deploy/install-tools.sh" in readme and "skipped" in readme


def test_the_compose_ingress_runs_one_process_per_cpu_unless_told() -> None:
    from ingress.processes import AUTO, PROCESSES

    value = compose()["services"]["ingress"]["environment"]["RESULTBUS_INGRESS_PROCESSES"]
    name, default = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value).groups()  # type: ignore[union-attr]
    assert name == "RESULTBUS_INGRESS_PROCESSES"  # the host's value when set, else auto
    assert PROCESSES.read({name: default}) == AUTO
    # The rest of the common environment is still the ingress's (the merge kept it).
    assert compose()["services"]["ingress"]["environment"]["RESULTBUS_METRICS_PORT"] == "9100"

"""What can be checked of the container deliverables without a Docker engine: the files parse, every
command they run is one this code base has, and everything the image copies exists."""

import subprocess
import sys
from pathlib import Path

import yaml

from workers.__main__ import ROLES

ROOT = Path(__file__).resolve().parent.parent


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

"""docker-compose.yml is valid by a Compose implementation's own parser (`docker compose config`,
or the docker-compose package Debian ships); skipped, saying so, where neither is installed."""

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import INSTALL_HINT, ROOT


def _compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.skip(f"no Compose implementation installed: {INSTALL_HINT}")


def _config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_compose(), "-f", str(path), "config", "-q"],
        capture_output=True, text=True, cwd=path.parent, timeout=60,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(path.parent)},
    )  # fmt: skip


def test_compose_file_is_valid() -> None:
    done = _config(ROOT / "docker-compose.yml")
    assert done.returncode == 0, done.stderr


def test_compose_refuses_a_broken_file(tmp_path: Path) -> None:
    broken = (ROOT / "docker-compose.yml").read_text().replace('    restart: "no"', "    restart: [1, 2]")
    assert broken != (ROOT / "docker-compose.yml").read_text()
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "demo.env").write_text("")
    (tmp_path / "docker-compose.yml").write_text(broken)
    assert _config(tmp_path / "docker-compose.yml").returncode != 0

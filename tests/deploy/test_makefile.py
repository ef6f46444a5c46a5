"""What the Makefile runs, read with `make -n` (nothing is run): a first install says what it is doing
and shows pip's progress rather than looking hung, and `make teardown` runs the teardown command,
asking unless YES=1."""

import subprocess
from pathlib import Path

from tests.support.paths import ROOT


def dry_run(*args: str) -> list[str]:
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def test_a_first_install_says_what_it_does_and_shows_pips_progress(tmp_path: Path) -> None:
    lines = dry_run("install", f"VENV={tmp_path / 'fresh-venv'}")
    pip = [n for n, line in enumerate(lines) if "pip install" in line and "-e " in line]
    assert len(pip) == 1, lines
    said = [n for n, line in enumerate(lines) if line.startswith("echo") and "installing resultbus" in line]
    assert said and said[0] < pip[0], lines
    assert "--quiet" not in lines[pip[0]] and "-q " not in lines[pip[0]], lines[pip[0]]


def test_make_teardown_runs_the_command_asking_unless_told(tmp_path: Path) -> None:
    assert dry_run("teardown")[-1].endswith("-m workers teardown")
    assert dry_run("teardown", "YES=1")[-1].endswith("-m workers teardown --yes")

"""python -m ingress refuses a bad sources file or setting at boot: exit 2 and the one message, nothing else."""

import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT
from tests.support.sources import FULL


def test_python_m_ingress_exits_with_the_one_message(tmp_path: Path) -> None:
    bad = tmp_path / "sources.toml"
    bad.write_text(FULL)
    result = subprocess.run(
        [sys.executable, "-m", "ingress"],
        env={"RESULTBUS_SOURCES": str(bad), "ITEP_ACME_PASSWORD_NEXT": "p2-s3cret", "PATH": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"ingress: bad setting: RESULTBUS_SOURCES: file {bad}: source 'itep-acme': field 'auth.password_env': "
        "environment variable ITEP_ACME_PASSWORD is not set"
    ]


def test_python_m_ingress_refuses_a_bad_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ingress"],
        env={"RESULTBUS_INGRESS_PORT": "eighty", "PATH": ""},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "RESULTBUS_INGRESS_PORT" in result.stderr

"""Where the clone is, and what the tests read from it."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo_secrets() -> dict[str, str]:
    lines = (ROOT / "deploy" / "demo.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


RESULTBUS = Path(sys.executable).parent / "resultbus"

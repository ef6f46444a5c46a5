"""The Prometheus text expositions of several processes of one role as one, each sample labelled
with its process: what the ingress supervisor serves on RESULTBUS_METRICS_PORT, so that one scrape
target (one port, as a pod's annotation or a compose service names) shows every process.

Each family's `# HELP` and `# TYPE` once, then the samples of every process together (the format
wants a family's lines in one block); values are copied as written, never re-formatted.
"""

from collections.abc import Iterable
from typing import Final

LABEL: Final = "process"
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:")


def labelled(line: str, label: str, value: str) -> str:
    """`name{a="b"} 1` -> `name{process="0",a="b"} 1`; `name 1` -> `name{process="0"} 1`."""
    end = next((i for i, c in enumerate(line) if c not in _NAME_CHARS), len(line))
    name, rest = line[:end], line[end:]
    if rest.startswith("{}"):
        rest = rest[2:]
    elif rest.startswith("{"):
        return f'{name}{{{label}="{value}",{rest[1:]}'
    return f'{name}{{{label}="{value}"}}{rest}'


def merge(expositions: Iterable[tuple[str, str]], label: str = LABEL) -> str:
    """`expositions`: (the process's label value, its /metrics text)."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for value, text in expositions:
        family = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            if line.startswith("#"):
                parts = line.split(None, 3)
                if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                    family = parts[2]
                    seen = headers.setdefault(family, [])
                    samples.setdefault(family, [])
                    if line not in seen:
                        seen.append(line)
                continue  # a comment of another kind says nothing a scrape reads
            if not family:  # a sample before any header: a family of its own, untyped
                family = line.split("{", 1)[0].split(" ", 1)[0]
                headers.setdefault(family, [])
            samples.setdefault(family, []).append(labelled(line, label, value))
    out: list[str] = []
    for family, lines in samples.items():
        out.extend(headers.get(family, []))
        out.extend(lines)
    return "\n".join(out) + "\n" if out else ""

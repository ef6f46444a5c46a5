"""The soak's calls: correctly signed webhooks of the four vendors for deploy/sources.example.toml
(from devkit/samples.py), mixed with exact duplicates, calls with a bad signature (401) and calls
that authenticate but cannot be decoded (a Synap body with a wrong-typed field: stored as rejected).
"""

import random
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from devkit import samples

SOURCES_FILE = "deploy/sources.example.toml"
SECRET_NAMES = (
    "RESULTBUS_DEMO_ITEP_PASSWORD",
    "RESULTBUS_DEMO_ITEP_TOKEN",
    "RESULTBUS_DEMO_INSPERA_SECRET",
    "RESULTBUS_DEMO_SYNAP_PASSWORD",
    "RESULTBUS_DEMO_TESTPRESS_KEY",
)


class Kind(StrEnum):
    VALID = "valid"  # a new vendor event
    DUPLICATE = "duplicate"  # the same body and headers as an earlier valid call
    BAD_SIGNATURE = "bad_signature"  # must be 401, never stored
    UNDECODABLE = "undecodable"  # authenticates, must be stored as rejected


@dataclass(frozen=True)
class Call:
    kind: Kind
    source: str
    body: bytes
    headers: dict[str, str]
    key: str | None  # the vendor event it carries (valid and duplicate calls), else None


@dataclass(frozen=True)
class Mix:
    duplicates: float = 0.05
    bad_signatures: float = 0.02
    undecodable: float = 0.01


def new_secrets() -> dict[str, str]:
    return {name: secrets.token_urlsafe(18) for name in SECRET_NAMES}


def build_calls(total: int, secret_values: dict[str, str], mix: Mix, seed: int = 7) -> list[Call]:
    rng = random.Random(seed)
    calls: list[Call] = []
    valid: list[Call] = []
    for n in range(total):
        roll = rng.random()
        if roll < mix.duplicates and valid:
            earlier = rng.choice(valid)
            calls.append(Call(Kind.DUPLICATE, earlier.source, earlier.body, earlier.headers, earlier.key))
        elif roll < mix.duplicates + mix.bad_signatures:
            calls.append(_bad_signature(n, secret_values))
        elif roll < mix.duplicates + mix.bad_signatures + mix.undecodable:
            calls.append(_undecodable(n, secret_values))
        else:
            call = _valid(n, secret_values)
            valid.append(call)
            calls.append(call)
    return calls


def _valid(n: int, secret_values: dict[str, str]) -> Call:
    vendor, source, body, headers = samples.demo_requests(secret_values, n)[n % 4]
    return Call(Kind.VALID, source, body, headers, f"{vendor}:{n}")


def _bad_signature(n: int, secret_values: dict[str, str]) -> Call:
    """A header-authenticated vendor (iTEP, Inspera, Synap) with a wrong credential."""
    vendor, source, body, headers = samples.demo_requests(secret_values, n)[n % 3]
    if vendor == "inspera":
        headers = {**headers, "X-Inspera-Signature": "0" * 40}
    else:
        headers = {**headers, "Authorization": samples.basic(vendor, "not-the-password")}
    return Call(Kind.BAD_SIGNATURE, source, body, headers, None)


def _undecodable(n: int, secret_values: dict[str, str]) -> Call:
    sent: dict[str, Any] = samples.synap_released(attempt_id=f"att-undecodable-{n}")
    sent["meta"]["timestamp"] = n  # Synap sends a string: msgspec refuses the int
    headers = {
        "Content-Type": "application/json",
        "Authorization": samples.basic("synap", secret_values["RESULTBUS_DEMO_SYNAP_PASSWORD"]),
    }
    return Call(Kind.UNDECODABLE, "synap-demo-results", samples.as_json(sent), headers, None)

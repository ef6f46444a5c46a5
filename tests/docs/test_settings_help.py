"""Every role's `--help` lists every setting the role reads, with its default as the docs write it,
whatever the environment holds; the docs name no setting that no role reads, and their defaults are
the ones the roles use. The settings are declared once (common/env.py `Setting`); these tests hold the
reading, the help and the docs to those declarations."""

import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from common.env import Setting, format_duration, parse_duration
from common.settings import PROCESS, ProcessSettings
from tests.support.paths import ROOT, demo_secrets
from tests.support.settings_docs import (
    DOCUMENTS,
    NOT_PROCESS_SETTINGS,
    ROLES,
    table_rows,
)

# What the settings without a default are set to in a full environment.
EXAMPLES = {
    "RESULTBUS_LOG_JSON": "1",
    "RESULTBUS_METRICS_PORT": "9100",
    "RESULTBUS_DATABASE_SCHEMA": "tenant_a",
    "RESULTBUS_ADMIN_TOKEN": "an-admin-token-of-some-length",
    "RESULTBUS_ITEP_ENDPOINT": "https://itep.example.com/requests/ecommerce_webhook.php",
    "RESULTBUS_ITEP_TRACK": "ACME",
    "RESULTBUS_ITEP_SIGNATURE_HEADER_GTX": "X-Gtx",
    "RESULTBUS_ITEP_SIGNATURE_HEADER_STX": "X-Stx",
}


def declared(role: str) -> list[Setting[Any]]:
    if role == "ingress":
        from ingress.settings import SETTINGS as ingress

        groups = [ingress]
    elif role == "admin":
        from admin.settings import SETTINGS as admin

        groups = list(admin)
    else:
        from workers.__main__ import ROLES as roles

        groups = list(roles[role].settings)
    found = {s.name: s for group in [PROCESS, *groups] for s in group.settings}
    return list(found.values())


def reader(role: str) -> Callable[[Mapping[str, str]], Any]:
    if role == "ingress":
        from ingress.__main__ import read_settings

        def read(env: Mapping[str, str]) -> Any:
            settings, sources = read_settings(env)
            return settings, sorted(sources)  # a source's authenticator compares by identity

    elif role == "admin":
        from admin.settings import AdminSettings

        read = AdminSettings.from_env
    else:
        from workers.__main__ import ROLES as roles

        read = roles[role].read_settings
    return lambda env: (ProcessSettings.from_env(env), read(env))


def minimal_env(role: str, tmp_path: Path) -> dict[str, str]:
    """Only what has no default, and a sources file that names no secret."""
    sources = tmp_path / "sources.toml"
    sources.write_text(
        '[[source]]\nid = "t"\nvendor = "synap"\nevent = "attempt.completed"\n[source.auth]\nkind = "none"\n'
    )
    env = {s.name: EXAMPLES[s.name] for s in declared(role) if s.required or s.default is None}
    return {**env, "RESULTBUS_SOURCES": str(sources), "ITEP_API_KEY": "k"}


def full_env(role: str, tmp_path: Path) -> dict[str, str]:
    """Every setting set, each to its default as --help writes it."""
    shown = {s.name: s.shown for s in declared(role) if not s.required and s.default is not None}
    return {**shown, **minimal_env(role, tmp_path)}


class Recording(Mapping[str, str]):
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def listed(help_text: str) -> dict[str, str]:
    """{name: default} of the settings a --help lists."""
    rows = [
        re.split(r"\s{2,}", line.strip())
        for line in help_text.splitlines()
        if line.startswith("  RESULTBUS_")
    ]
    return {row[0]: row[1] for row in rows}


def run_help(role: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "workers", role, "--help"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("role", ROLES)
def test_help_lists_every_setting_whatever_the_environment(role: str, tmp_path: Path) -> None:
    path = {"PATH": "/usr/bin:/bin"}
    empty = listed(run_help(role, path))
    # Everything set, the sources file's secrets too: `--help` once listed more (or fewer) then.
    full = {
        **path,
        **full_env(role, tmp_path),
        **demo_secrets(),
        "RESULTBUS_SOURCES": "deploy/sources.example.toml",
    }
    assert listed(run_help(role, full)) == empty
    assert empty == {s.name: s.shown for s in declared(role)}
    for setting in declared(role):
        if setting.required:
            assert empty[setting.name] == "(required)"


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_what_it_declares_and_the_shown_defaults_are_the_defaults(
    role: str, tmp_path: Path
) -> None:
    read = reader(role)
    recording = Recording(full_env(role, tmp_path))
    # Each default as --help writes it reads back to the default: the same settings as unset.
    assert read(recording) == read(minimal_env(role, tmp_path))
    asked = {name for name in recording.asked if name.startswith("RESULTBUS_")}
    assert asked == {s.name for s in declared(role)}


def test_router_only_settings_are_the_routers_alone() -> None:
    router_only = {
        "RESULTBUS_PREFETCH",
        "RESULTBUS_BATCH_SIZE",
        "RESULTBUS_BATCH_WAIT",
        "RESULTBUS_QUICK_RETRIES",
    }
    assert router_only <= {s.name for s in declared("router")}
    for role in ROLES:
        if role != "router":
            assert not router_only & {s.name for s in declared(role)}, role
    # The admin's console names the routers' delay tiers; no other role reads them.
    readers_of_tiers = [r for r in ROLES if "RESULTBUS_RETRY_DELAYS" in {s.name for s in declared(r)}]
    assert readers_of_tiers == ["router", "admin"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0"),
        (0.05, "50ms"),
        (0.2, "200ms"),
        (1.5, "1.5s"),
        (90, "90s"),
        (120, "2m"),
        (28800, "8h"),
        (31536000, "365d"),
    ],
)
def test_durations_are_shown_in_the_largest_whole_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def documented_default(cell: str) -> str:
    quoted = re.findall(r"`([^`]*)`", cell)
    return quoted[0] if quoted else cell.strip().strip("()")


def test_every_documented_setting_is_in_its_roles_help_with_the_same_default() -> None:
    helps = {role: {s.name: s.shown for s in declared(role)} for role in ROLES}
    errors = []
    for page, name, default, roles in table_rows():
        having = [role for role in roles if name in helps[role]]
        if not having:
            errors.append(f"{page}: {name} is not in the --help of {roles}")
            continue
        if page == "README.md" and having != roles:  # "all", "workers": every one of them
            errors.append(f"{page}: {name} is documented for {roles}, read by {having}")
        shown = helps[having[0]][name]
        if documented_default(default) != shown.strip("()"):
            errors.append(f"{page}: {name} documented {default!r}, --help {shown!r}")
    assert not errors, "\n".join(errors)


def test_every_setting_the_docs_name_is_read_by_a_role() -> None:
    read = {s.name for role in ROLES for s in declared(role)}
    for path in DOCUMENTS:
        for name in set(re.findall(r"RESULTBUS_[A-Z_]*[A-Z]", path.read_text())):
            if name.startswith("RESULTBUS_DEMO_"):
                continue  # deploy/demo.env's demo secrets, named by the example sources file
            assert name in read or name in NOT_PROCESS_SETTINGS, f"{path.name}: {name} is read by no role"


def test_every_setting_of_every_role_is_in_a_settings_table() -> None:
    documented = {name for _, name, _, _ in table_rows()}
    for role in ROLES:
        missing = {s.name for s in declared(role)} - documented
        assert not missing, f"{role} reads settings no table of the docs lists: {sorted(missing)}"


def test_admin_help_without_a_token_lists_host_database_broker_private_endpoints_and_console() -> None:
    # `python -m admin --help` without RESULTBUS_ADMIN_TOKEN once listed 8 settings of 20.
    result = subprocess.run(
        [sys.executable, "-m", "admin", "--help"], env={"PATH": "/usr/bin:/bin"}, cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = listed(result.stdout)
    for name in (
        "RESULTBUS_ADMIN_HOST",
        "RESULTBUS_ADMIN_PORT",
        "RESULTBUS_DATABASE_URL",
        "RESULTBUS_AMQP_URL",
        "RESULTBUS_ALLOW_PRIVATE_ENDPOINTS",
        "RESULTBUS_RETRY_DELAYS",
        "RESULTBUS_DELIVERY_SCHEDULE",
        "RESULTBUS_DELIVERY_PARK",
    ):
        assert name in shown, name
    assert shown["RESULTBUS_ADMIN_TOKEN"] == "(required)"
    assert shown["RESULTBUS_DELIVERY_SCHEDULE"] == "0,5s,5m,30m,2h,5h,10h,10h"

"""`resultbus COMMAND` (installed into the venv: `.venv/bin/resultbus` from a clone), or
`python -m workers COMMAND`: one process per role, each its own container.

Roles: router, delivery, checker, fulfillment, retention (long-running); ingress and admin (the HTTP servers, also
`python -m ingress|admin`); migrate (applies the SQL migrations, then exits); inspect and replay
(operator commands); teardown (removes what `make run` made, asking first). `resultbus COMMAND
--help` lists a command's settings or options.
"""

import argparse
import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from common.db import connect, ensure_database
from common.env import Group, SettingError, process_env
from common.logs import configure_logging
from common.service import Service, serve
from common.settings import ProcessSettings, WorkerSettings
from workers import operator_cli, teardown
from workers.migrate import migrate

log = structlog.get_logger()


class Role:
    """A role, named by where its functions live ("module:attribute"), imported only when the role is
    run: a module's Prometheus metrics are registered when it is imported, and a process serves every
    registered metric, so a router importing the checker would export the checker's series at zero."""

    def __init__(self, summary: str, settings: str, read_settings: str, start: str) -> None:
        self.summary = summary
        self._settings = settings
        self._read_settings = read_settings
        self._start = start

    @property
    def settings(self) -> Sequence[Group]:
        """The declarations of what `read_settings` reads, for --help."""
        return _load(self._settings)  # type: ignore[no-any-return]

    @property
    def read_settings(self) -> Callable[[Mapping[str, str]], Any]:
        return _load(self._read_settings)  # type: ignore[no-any-return]

    @property
    def start(self) -> Callable[[Service, Any], Awaitable[None]]:
        return _load(self._start)  # type: ignore[no-any-return]


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    found: Any = importlib.import_module(module)
    for name in attribute.split("."):
        found = getattr(found, name)
    return found


ROLES = {
    "router": Role(
        "Raw queue -> PostgreSQL -> results exchange: decodes, normalizes and stores each webhook, then "
        "publishes its events.",
        "workers.router.settings:SETTINGS",
        "workers.router.settings:RouterSettings.from_env",
        "workers.router.run:start_router",
    ),
    "delivery": Role(
        "Results exchange -> subscriber endpoints: signed webhooks with retries in the broker.",
        "workers.delivery.settings:SETTINGS",
        "workers.delivery.run:read_delivery_settings",
        "workers.delivery.run:start_delivery",
    ),
    "checker": Role(
        "Verifies every subscriber endpoint on a schedule; unsubscribes one that fails several times in a row.",
        "workers.checker.settings:SETTINGS",
        "workers.checker.run:read_checker_settings",
        "workers.checker.run:start_checker",
    ),
    "fulfillment": Role(
        "Orders iTEP test IDs (iTEP's fulfillment API) for the orders placed on the admin API or the "
        "itep.orders queue; publishes each order's changes.",
        "workers.fulfillment.settings:SETTINGS",
        "workers.fulfillment.run:read_fulfillment_settings",
        "workers.fulfillment.run:start_fulfillment",
    ),
    "retention": Role(
        "Purges what is past its retention period (in small batches) and runs queued erasures.",
        "workers.retention.settings:SETTINGS",
        "workers.retention.run:read_retention_settings",
        "workers.retention.run:start_retention",
    ),
}


async def run_migrate(settings: WorkerSettings) -> None:
    await ensure_database(settings)
    conn = await connect(settings)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    log.info("migrations up to date", applied=applied)


# The HTTP servers live outside `workers`; `resultbus ingress|admin` runs them, imported only then.
SERVERS = {
    "ingress": ("ingress.__main__:main", "the vendor-facing webhook server (also `python -m ingress`)"),
    "admin": ("admin.__main__:main", "the admin API (also `python -m admin`)"),
}


def _prog() -> str:
    # The console script and `python -m workers` are the same program; help shows how it was called.
    return "resultbus" if sys.argv and sys.argv[0].endswith("resultbus") else "python -m workers"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = _prog()
    if argv and argv[0] in ROLES:
        role = ROLES[argv[0]]
        return serve(
            argv[0],
            description=role.summary,
            settings=role.settings,
            read_settings=role.read_settings,
            start=role.start,
            argv=argv[1:],
            prog=f"{prog} {argv[0]}",
        )
    if argv and argv[0] in SERVERS:
        server_main: Callable[..., int] = _load(SERVERS[argv[0]][0])
        return server_main(argv[1:], prog=f"{prog} {argv[0]}")
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, role in ROLES.items():
        sub.add_parser(name, help=role.summary, add_help=False)
    for name, (_, summary) in SERVERS.items():
        sub.add_parser(name, help=summary, add_help=False)
    sub.add_parser("migrate", help="apply the SQL migrations (safe from several containers at once)")
    operator_cli.add_commands(sub)
    teardown.add_command(sub)
    args = parser.parse_args(argv)
    env = process_env()
    try:
        process, settings = ProcessSettings.from_env(env), WorkerSettings.from_env(env)
    except SettingError as error:
        print(f"{args.command}: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging(process.log_level, json=process.log_json, role=args.command)
    if args.command == "migrate":
        asyncio.run(run_migrate(settings))
        return 0
    if args.command == "teardown":
        return asyncio.run(teardown.run(settings, env, yes=args.yes))
    asyncio.run(operator_cli.run(settings, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

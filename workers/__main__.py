"""`python -m workers ROLE`: one process per role, each its own container.

Roles: router, delivery, checker, retention (long-running); migrate (applies the SQL migrations, then exits);
inspect and replay (operator commands). `python -m workers ROLE --help` lists a role's settings.
"""

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from common.db import connect, ensure_database
from common.env import SettingError, process_env
from common.logs import configure_logging
from common.service import Service, serve
from common.settings import ProcessSettings, WorkerSettings
from workers import operator_cli
from workers.checker.run import read_checker_settings, start_checker
from workers.delivery.run import read_delivery_settings, start_delivery
from workers.migrate import migrate
from workers.retention.run import read_retention_settings, start_retention
from workers.router.run import start_router

log = structlog.get_logger()


class Role:
    def __init__(
        self,
        summary: str,
        read_settings: Callable[[Mapping[str, str]], Any],
        start: Callable[[Service, Any], Awaitable[None]],
    ) -> None:
        self.summary = summary
        self.read_settings = read_settings
        self.start = start


ROLES = {
    "router": Role(
        "Raw queue -> PostgreSQL -> results exchange: decodes, normalizes and stores each webhook, then "
        "publishes its events.",
        WorkerSettings.from_env,
        start_router,
    ),
    "delivery": Role(
        "Results exchange -> subscriber endpoints: signed webhooks with retries in the broker.",
        read_delivery_settings,
        start_delivery,
    ),
    "checker": Role(
        "Verifies every subscriber endpoint on a schedule; unsubscribes one that fails several times in a row.",
        read_checker_settings,
        start_checker,
    ),
    "retention": Role(
        "Purges what is past its retention period (in small batches) and runs queued erasures.",
        read_retention_settings,
        start_retention,
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


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ROLES:
        role = ROLES[argv[0]]
        return serve(
            argv[0],
            description=role.summary,
            read_settings=role.read_settings,
            start=role.start,
            argv=argv[1:],
            prog=f"python -m workers {argv[0]}",
        )
    parser = argparse.ArgumentParser(
        prog="python -m workers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="ROLE")
    for name, role in ROLES.items():
        sub.add_parser(name, help=role.summary, add_help=False)
    sub.add_parser("migrate", help="apply the SQL migrations (safe from several containers at once)")
    operator_cli.add_commands(sub)
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
    asyncio.run(operator_cli.run(settings, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The commands README.md and docs/*.md tell a newcomer to type, run as written from the clone where
that is safe (help, operator listings and replays in a world of the test's own), and checked where it
is not (make targets exist, curl calls name a real admin route). A command of a kind this test does
not know fails it: a new documented command gets a check, or a reason not to run it, here."""

import asyncio
import os
import re
import shlex
from pathlib import Path

import pytest

from admin.app import Handlers, routes
from schemas.topology import Topology
from tests.conftest import DATABASE_URL
from workers.migrate import migrate

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(sh|shell|bash|console)\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`((?:\.venv/bin/|make )[^`]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every line of a shell block and every inline `.venv/bin/…`/`make …`."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for _, block in FENCE.findall(text):
            for line in block.replace("\\\n", " ").splitlines():
                if shlex.split(line, comments=True):
                    found.append((path.name, line))
        for command in INLINE.findall(text):
            found.append((path.name, command))
    return found


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))


def admin_paths() -> set[tuple[str, str]]:
    # Only the operations are read: the handlers never run, so they need no pool or broker.
    table = routes(Handlers(None, None, allow_private=False, ready=lambda: True))  # type: ignore[arg-type]
    return {(op.method, op.path) for op, _ in table}


def classify(command: str) -> str:
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]  # VAR=value prefixes
    head = words[0]
    if head == "make":
        return "make"
    if head == ".venv/bin/resultbus" and len(words) == 1:
        return "mention"  # the program named in prose
    if head == ".venv/bin/resultbus":
        return (
            "help" if "--help" in words else ("operator" if words[1] in ("inspect", "replay") else "process")
        )
    if head == ".venv/bin/python":
        return "script"
    if head == "curl":
        return "curl"
    if head in ("python", "python3", "resultbus", "pip"):
        return "needs an activated venv"
    return "unknown"


COMMANDS = documented_commands()


def test_the_documents_have_commands_and_each_is_of_a_known_kind() -> None:
    assert len(COMMANDS) > 15
    kinds = {(doc, command): classify(command) for doc, command in COMMANDS}
    wrong = {k: v for k, v in kinds.items() if v in ("unknown", "needs an activated venv")}
    assert not wrong, f"documented commands that do not work from a clone, or are unchecked: {wrong}"


def test_make_targets_exist() -> None:
    targets = makefile_targets()
    for doc, command in COMMANDS:
        if classify(command) == "make":
            words = [w for w in shlex.split(command, comments=True) if not re.fullmatch(r"[A-Z_]+=\S*", w)]
            assert set(words[1:]) <= targets, (doc, command)


def test_curl_calls_name_admin_routes() -> None:
    paths = admin_paths()
    for doc, command in COMMANDS:
        if classify(command) != "curl":
            continue
        words = shlex.split(command, comments=True)
        [url] = [w for w in words if w.startswith("http://127.0.0.1:8081/")]
        method = "POST" if "-d" in words else "GET"
        path = url.removeprefix("http://127.0.0.1:8081").partition("?")[0]
        # A route's `{id}` matches whatever the document writes there (`<id>`, a real id).
        assert any(
            m == method and re.fullmatch(re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(p)), path)
            for m, p in paths
        ), (doc, command)


def test_every_relative_link_stays_in_the_repository() -> None:
    for path in DOCUMENTS:
        for target in LINK.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (path.parent / target).resolve()
            assert resolved.is_relative_to(ROOT), (path.name, target)
            assert resolved.exists(), (path.name, target)


async def run_as_written(command: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *shlex.split(command, comments=True), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


@pytest.fixture
def clone_env(topology: Topology, db_schema: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTBUS_") and k != "VIRTUAL_ENV"}
    # No activated venv: the commands must work from the clone as written.
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.update(
        RESULTBUS_AMQP_PREFIX=topology.prefix,
        RESULTBUS_DATABASE_URL=DATABASE_URL,
        RESULTBUS_DATABASE_SCHEMA=db_schema,
    )
    return env


async def test_help_and_operator_commands_run_as_written(clone_env: dict[str, str], db_schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(DATABASE_URL, server_settings={"search_path": db_schema})
    try:
        await migrate(conn)
    finally:
        await conn.close()
    ran = []
    for doc, command in COMMANDS:
        kind = classify(command)
        if kind in ("help", "operator"):
            code, out = await run_as_written(command, clone_env)
            assert code == 0, (doc, command, out)
            ran.append(command)
        elif kind == "script":
            # A long-running example (a consumer, a receiver): its options as written parse.
            code, out = await run_as_written(command.split("#")[0] + " --help", clone_env)
            assert code == 0 and "usage:" in out, (doc, command, out)
            ran.append(command)
    assert any("inspect dead" in c for c in ran) and any("replay rejected" in c for c in ran)
    assert any("--help" in c for c in ran)

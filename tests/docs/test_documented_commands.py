"""The commands README.md and docs/*.md tell a newcomer to type, run as written from the clone where
that is safe (help, operator listings and replays in a world of the test's own), and checked where it
is not (make targets exist, curl calls name a real admin route). A command of a kind this test does
not know fails it: a new documented command gets a check, or a reason not to run it, here."""

import asyncio
import itertools
import os
import re
import shlex

import pytest

from admin.app import Handlers, routes
from schemas.topology import Topology
from tests.support.paths import ROOT
from tests.support.services import DATABASE_URL
from workers.migrate import migrate

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(sh|shell|bash|console)\n(.*?)^```", re.S | re.M)
ANY_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# The first word of a command: inline code starting with one of these (after VAR=value) is one.
PROGRAMS = {"python", "python3", "pip", "resultbus", "make", "curl", "bash", "sh", *{"docker", "kubectl"}}
# Tools of other projects that a page names but this machine cannot run (no Docker engine, no
# cluster, the broker's own CLI on a production node): their commands are checked for what they name.
EXTERNAL = {"docker", "kubectl", "rabbitmq-ctl", "rabbitmqctl", "asyncapi", "promtool"}
# A command the sentence says is typed somewhere else (an activated venv, a container of the image):
# "with the venv activated, plain `resultbus`".
ELSEWHERE = re.compile(r"(venv (is )?activated|activated venv|in a container|in the pods)[^.`]*$")


def _is_command(words: list[str]) -> bool:
    words = _without_variables(words)
    if words in (["resultbus"], ["python"]):
        return False  # the project's name (its database, its prefix), not a command
    return bool(words) and (words[0] in PROGRAMS | EXTERNAL or words[0].startswith(".venv/bin/"))


def _without_variables(words: list[str]) -> list[str]:
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words = words[1:]  # VAR=value prefixes
    return words


def _expanded(command: str) -> list[str]:
    """`python -m bench ingress|router [SECONDS]`: one command per alternative, options in brackets
    left out (what a reader types)."""
    words = [w for w in command.split() if not (w.startswith("[") and w.endswith("]"))]
    choices = [w.split("|") if "|" in w and "://" not in w else [w] for w in words]
    return [" ".join(combination) for combination in itertools.product(*choices)]


def documented_commands() -> list[tuple[str, str]]:
    """(document, command) for every line of a shell block and every command in inline code, prose
    included (one that wraps across lines too)."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text()
        for _, block in FENCE.findall(text):
            for line in block.replace("\\\n", " ").splitlines():
                if shlex.split(line, comments=True):
                    found.append((path.name, line))
        prose = ANY_FENCE.sub("", text)
        for match in INLINE.finditer(prose):
            span = " ".join(match[1].replace("\\|", "|").split())
            if _is_command(span.split()) and not ELSEWHERE.search(
                prose[max(0, match.start() - 80) : match.start()]
            ):
                found.extend((path.name, command) for command in _expanded(span))
    return found


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))


def admin_paths() -> set[tuple[str, str]]:
    # Only the operations are read: the handlers never run, so they need no pool or broker.
    table = routes(Handlers(None, None, allow_private=False, ready=lambda: True))  # type: ignore[arg-type]
    return {(op.method, op.path) for op, _ in table}


def classify(command: str) -> str:
    words = _without_variables(shlex.split(command, comments=True))
    head = words[0]
    if head == "make":
        return "make"
    if head == ".venv/bin/resultbus" and len(words) == 1:
        return "mention"  # the program named in prose
    if head == ".venv/bin/resultbus":
        if "--help" in words:
            return "help"
        return "operator" if words[1] in ("inspect", "replay") else "process"
    if words[:3] == [".venv/bin/python", "-m", "schemas"]:
        return "prints"  # writes a document to stdout, nothing else
    if head == ".venv/bin/python":
        return "script"
    if head == "curl":
        return "curl"
    if head in EXTERNAL:
        return "external"
    if head in ("python", "python3", "resultbus", "pip"):
        return "needs an activated venv"
    return "unknown"


COMMANDS = documented_commands()


def test_the_documents_have_commands_and_each_is_of_a_known_kind() -> None:
    assert len(COMMANDS) > 80
    kinds = {(doc, command): classify(command) for doc, command in COMMANDS}
    wrong = {k: v for k, v in kinds.items() if v in ("unknown", "needs an activated venv")}
    assert not wrong, f"documented commands that do not work from a clone, or are unchecked: {wrong}"


def test_commands_of_other_tools_name_what_is_here() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    for doc, command in COMMANDS:
        if classify(command) != "external":
            continue
        words = shlex.split(command)
        if words[0] == "docker":
            assert words[1:3] == ["compose", "up"], (doc, command)
            for word in words:  # --scale SERVICE=N names a compose service
                if re.fullmatch(r"[a-z]+=\d+", word):
                    assert f"\n  {word.split('=')[0]}:" in compose, (doc, command)
        for word in words[1:]:  # a path it is given exists
            if "/" in word and not word.startswith("-"):
                assert (ROOT / word).exists(), (doc, command)


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
    words = shlex.split(command, comments=True)
    program = _without_variables(words)
    env = {**env, **dict(w.split("=", 1) for w in words[: len(words) - len(program)])}
    process = await asyncio.create_subprocess_exec(
        *program, cwd=ROOT, env=env,
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
    # Each distinct command once (many pages show the same), the ones without side effects a few at once.
    where = {command: doc for doc, command in reversed(COMMANDS)}
    ran: list[str] = []

    async def check(command: str) -> None:
        kind = classify(command)
        if kind in ("help", "operator", "prints"):
            code, out = await run_as_written(command, clone_env)
            assert code == 0, (where[command], command, out)
        elif kind in ("script", "process"):
            # A process, a benchmark or a long-running example (a consumer, a receiver): the
            # program is there and its options as written parse.
            code, out = await run_as_written(command.split("#")[0] + " --help", clone_env)
            assert code == 0 and "usage:" in out, (where[command], command, out)
        else:
            return
        ran.append(command)

    for command in where:
        if classify(command) == "operator":
            await check(command)
    slots = asyncio.Semaphore(3)

    async def bounded(command: str) -> None:
        async with slots:
            await check(command)

    await asyncio.gather(*(bounded(c) for c in where if classify(c) != "operator"))
    assert any("inspect dead" in c for c in ran) and any("replay rejected" in c for c in ran)
    assert any("--help" in c for c in ran) and any(classify(c) == "process" for c in ran)


def test_a_documented_migrate_says_it_applies_every_migration() -> None:
    # `migrate   # migration 007` went stale when 008 came: it applies whatever is not applied yet.
    for doc, command in COMMANDS:
        if shlex.split(command, comments=True)[1:2] == ["migrate"]:
            assert not re.search(r"migration \d+", command), (doc, command)
    for path in DOCUMENTS:
        for number in re.findall(r"migration (\d{3})", path.read_text()):
            assert list((ROOT / "workers" / "migrations").glob(f"{number}_*.sql")), (path.name, number)

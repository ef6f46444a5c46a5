"""The roles and the settings tables of README.md and docs/*.md, as the settings tests read them."""

import re
from collections.abc import Iterator

from tests.support.paths import ROOT

ROLES = ["router", "delivery", "checker", "fulfillment", "retention", "ingress", "admin"]


WORKERS = ["router", "delivery", "checker", "fulfillment", "retention"]


# Not settings of a process: read by `make run`, `make demo`, the operator commands (`inspect
# queues`: the management API) and the tests (README "Settings", docs/operations.md).
NOT_PROCESS_SETTINGS = {
    "RESULTBUS_RABBITMQ_API",
    "RESULTBUS_FAKE_GRADEBOOK_PORT",
    "RESULTBUS_FAKE_CALIPER_PORT",
    "RESULTBUS_ROLES",
    "RESULTBUS_FAKE_ITEP_PORT",
    "RESULTBUS_DEMO_RECEIVER_PORT",
    "RESULTBUS_TEST_AMQP_URL",
    "RESULTBUS_TEST_DATABASE_URL",
    "RESULTBUS_CONSOLE_SCREENSHOTS",
}


# The docs: every RESULTBUS_ name, and the rows of the settings tables.
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


# Which roles a page's settings tables are about (README: its "used by" column).
PAGE_ROLES = {
    "checker.md": ["checker"],
    "subscribers.md": ["delivery", "admin"],
    "itep-orders.md": ["fulfillment"],
    "data.md": ["retention"],
    "operations.md": ["ingress"],
}


USED_BY = {"all": ROLES, "workers": [*WORKERS, "admin"], "ingress": ["ingress"], "router": ["router"]}


ROW = re.compile(r"^\| *(`RESULTBUS_[^|]*?) *\| *([^|]*?) *\| *([^|]*?) *\|", re.M)


def table_rows() -> Iterator[tuple[str, str, str, list[str]]]:
    """(page, name, documented default, roles) for every settings table row."""
    for path in DOCUMENTS:
        for names_cell, default_cell, third in ROW.findall(path.read_text()):
            names: list[str] = []
            for part in names_cell.split(" / "):
                name = part.strip().strip("`")
                names.append(names[-1].rsplit("_", 1)[0] + name if name.startswith("_") else name)
            defaults = default_cell.split(" / ")
            assert len(defaults) in (1, len(names)), (path.name, names_cell, default_cell)
            if set(names) <= NOT_PROCESS_SETTINGS:
                continue  # `make run`'s and `make demo`'s own
            roles = (
                USED_BY[third.split(":")[0].split()[0]] if path.name == "README.md" else PAGE_ROLES[path.name]
            )
            for i, name in enumerate(names):
                yield path.name, name, defaults[i if len(defaults) > 1 else 0], roles

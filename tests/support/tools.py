"""Finding the ecosystem validators that deploy/install-tools.sh installs. A missing tool skips its
test with the reason printed (`-ra` shows it in the summary): never a silent pass."""

import shutil

import pytest

from tests.support.paths import ROOT

INSTALL_HINT = (
    "`make test` installs it with deploy/install-tools.sh, which could not here (its message says why)"
)


def require(command: str, *, local: str | None = None) -> str:
    """The path of `command` (or of the project-local `local` under ROOT), or a skip saying why."""
    if local is not None and (ROOT / local).is_file():
        return str(ROOT / local)
    found = shutil.which(command)
    if found is None:
        pytest.skip(f"{command} is not installed here: {INSTALL_HINT}")
    return found

"""`python -m tests.poisoned_router`: the real router, except that a webhook whose body holds
KILL-THE-ROUTER kills the process (SIGKILL, as the OOM killer would) while it is being normalized.
A test-only hook: it lives in tests/, which no deployment ships or imports."""

import os
import signal
import sys

from schemas.envelope import RawEnvelope
from vendors.base import Normalized
from workers.__main__ import main
from workers.router import loop

_normalize = loop.normalize


def _poisoned(envelope: RawEnvelope) -> list[Normalized]:
    if b"KILL-THE-ROUTER" in envelope.body:
        os.kill(os.getpid(), signal.SIGKILL)
    return _normalize(envelope)


loop.normalize = _poisoned

if __name__ == "__main__":
    sys.exit(main(["router"]))

"""Progress of a long operator command (a replay of thousands): a bar on a terminal, a count every
few seconds otherwise (a log collector or a pipe gets lines it can read, not carriage returns)."""

import sys
import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[int], None]  # called with how many are done so far


def no_progress(_: int) -> None:
    pass


class Reporter:
    """`reporter(done)` after each item; `reporter.finish()` once at the end."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._every = every
        self._clock = clock
        self._started = self._last = clock()
        self._done = 0

    def __call__(self, done: int) -> None:
        self._done = done
        now = self._clock()
        # A bar is cheap to redraw but not free: a few times a second is smooth enough.
        if now - self._last >= (0.1 if self._tty else self._every):
            self._last = now
            self._write(now)

    def finish(self) -> None:
        if self._tty and self.total:
            self._write(self._clock())
            self._stream.write("\n")
            self._stream.flush()

    def _write(self, now: float) -> None:
        rate = self._done / max(now - self._started, 1e-9)
        if self._tty:
            width = 30
            filled = width * self._done // self.total if self.total else width
            bar = "#" * filled + "-" * (width - filled)
            self._stream.write(f"\r{self.label} [{bar}] {self._done}/{self.total} ({rate:.0f}/s)")
        else:
            self._stream.write(f"{self.label}: {self._done} of {self.total} ({rate:.0f}/s)\n")
        self._stream.flush()

"""Webhook ids: random (version 4) UUIDs in their usual text form, as `str(uuid.uuid4())` writes them.

Made 256 at a time from one read of the OS's randomness and kept as text: `uuid.uuid4()` reads the
OS per id and builds a UUID object to print it, several µs of a request that costs a few hundred.
"""

import os
from typing import Final

_BATCH: Final = 256
# The variant's first hex digit (RFC 9562: binary 10xx) from any random one.
_VARIANT: Final = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}
_pool: list[str] = []
# A forked child must not hand out the ids its parent still holds.
os.register_at_fork(after_in_child=_pool.clear)


def _refill() -> None:
    h = os.urandom(16 * _BATCH).hex()
    _pool.extend(
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-{_VARIANT[h[i + 16]]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, len(h), 32)
    )


def new_webhook_id() -> str:
    if not _pool:
        _refill()
    return _pool.pop()

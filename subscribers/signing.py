"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

`webhook-signature` is `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed with the bytes
that the base64 after `whsec_` encodes. During a rotation every live secret signs, and the header
carries the signatures separated by spaces: a receiver accepts the message if any of them matches.
"""

import base64
import binascii
import functools
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

SECRET_PREFIX: Final = "whsec_"
_SECRET_BYTES: Final = 32


class InvalidSecret(ValueError):
    """Not a `whsec_<base64>` secret of a usable length."""


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


@functools.lru_cache(maxsize=4096)  # every delivery signs: decode each secret once
def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret("a secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("the part after whsec_ is not base64") from None
    # Standard Webhooks asks for 24 to 64 bytes of key material.
    if not 24 <= len(key) <= 64:
        raise InvalidSecret("a secret holds 24 to 64 bytes")
    return key


def mask_secret(secret: str) -> str:
    """What the admin API shows after creation: enough to tell secrets apart, not to use one."""
    return secret[: len(SECRET_PREFIX) + 4] + "…"


def sign(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys
    )


def webhook_headers(keys: Sequence[bytes], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, message_id, timestamp, body),
    }

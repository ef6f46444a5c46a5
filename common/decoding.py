"""Decoding bytes nobody vouches for, and what each failure becomes: one short reason.

msgspec raises its own errors for bytes that are malformed (invalid UTF-8 and numbers out of range
among them) or of the wrong shape, but RecursionError for nesting deeper than it follows (an `Any`
field holding 1,000 nested arrays, or an unknown field it skips by recursing into it), and text
decoding raises UnicodeError, a ValueError. Every decode of an outsider's bytes goes through
`decode` (or catches DECODE_ERRORS and asks `reason`), so that none of them is ever a 500 or an
"unexpected" dead letter: the HTTP edges answer `Undecodable` with a 4xx, consumers reject the
message with its reason.
"""

from typing import Final, TypeVar

import msgspec

T = TypeVar("T")

DECODE_ERRORS: Final = (msgspec.MsgspecError, RecursionError, UnicodeError)


class Undecodable(Exception):
    """The bytes are not a value of the expected type; `reason` says why (with msgspec's field path)."""

    def __init__(self, reason: str, *, invalid: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        # Well-formed but not acceptable (a wrong type, a missing field): a 422 rather than a 400.
        self.invalid = invalid


def reason(error: BaseException) -> str:
    """The reason a decode failed, bounded: msgspec's own message names the field (`- at $.url`)."""
    if isinstance(error, RecursionError):
        return "nested too deeply to decode"
    if isinstance(error, UnicodeError):
        return "not valid UTF-8"
    return str(error)[:500]


def decode(decoder: msgspec.json.Decoder[T] | msgspec.msgpack.Decoder[T], data: bytes) -> T:
    try:
        return decoder.decode(data)
    except DECODE_ERRORS as error:
        raise Undecodable(reason(error), invalid=isinstance(error, msgspec.ValidationError)) from None

"""Request bodies of the admin API and the console, read and decoded here only: whatever a broken or
hostile body makes the readers raise (a body cut short, 1,000 nested arrays, bytes that are not
UTF-8, a form with no boundary) is a 4xx naming the problem, never a 500."""

from typing import Any, Final, TypeVar

import msgspec
from aiohttp import web
from multidict import MultiDictProxy

from admin.errors import BadRequest, Unprocessable
from common import decoding

T = TypeVar("T")

_decoders: dict[type, msgspec.json.Decoder[Any]] = {}

# What aiohttp's form parser (`request.post()`) raises for a body that is not the form its
# Content-Type says: bytes that are not its charset, an unknown charset, a multipart body without or
# with a wrong boundary, an unknown transfer encoding (RuntimeError), nested multipart (ValueError).
_FORM_ERRORS: Final = (ValueError, LookupError, RuntimeError)

INCOMPLETE: Final = "body incomplete: the connection closed before all of it arrived"


async def read(request: web.Request) -> bytes:
    try:
        return await request.read()
    except ConnectionError:
        raise BadRequest(INCOMPLETE) from None


async def json(request: web.Request, kind: type[T]) -> T:
    """The body decoded as `kind` (a decoder built once per type): 400 if it is not JSON, 422 if it
    is JSON of the wrong shape."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    data = await read(request)
    try:
        result: T = decoding.decode(decoder, data)
    except decoding.Undecodable as error:
        if error.invalid:
            raise Unprocessable(error.reason) from None
        raise BadRequest(f"malformed JSON: {error.reason}") from None
    return result


async def form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """The form of a POST (aiohttp keeps it: a handler's own `request.post()` gets the same one)."""
    try:
        return await request.post()
    except ConnectionError:
        raise BadRequest(INCOMPLETE) from None
    except _FORM_ERRORS as error:
        raise BadRequest(f"malformed form: {_form_reason(error)}") from None


def _form_reason(error: BaseException) -> str:
    if isinstance(error, UnicodeError):
        return "not valid in its charset"
    if isinstance(error, LookupError):
        return "unknown charset"
    return str(error)[:200]

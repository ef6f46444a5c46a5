"""Typed errors raised while handling a webhook; the middleware alone turns them into responses.

`reason` is what the caller sees and stays short and fixed per kind, so an answer never reveals which
check failed; `detail` goes to our log only and must never hold a secret, a signature or the body.
"""

from collections.abc import Mapping
from typing import ClassVar


class IngressError(Exception):
    status: ClassVar[int] = 500
    reason: ClassVar[str] = "internal error"
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason


class MalformedBody(IngressError):
    status = 400
    reason = "malformed body"


class IncompleteBody(IngressError):
    """The connection closed before the body was all there (fewer bytes than Content-Length, no last
    chunk): the sender's fault, whose answer nobody reads."""

    status = 400
    reason = "body incomplete"


class AuthError(IngressError):
    status = 401
    reason = "unauthorized"


class CallerNotAllowed(IngressError):
    status = 403
    reason = "forbidden"


class UnknownSource(IngressError):
    status = 404
    reason = "unknown source"


class MethodNotAllowed(IngressError):
    status = 405
    reason = "method not allowed"
    headers = {"Allow": "POST"}


class RequestTimeout(IngressError):
    status = 408
    reason = "request body too slow"


class PayloadTooLarge(IngressError):
    status = 413
    reason = "payload too large"


class UnsupportedMediaType(IngressError):
    status = 415
    reason = "unsupported media type"


class BrokerUnavailable(IngressError):
    """The webhook is not durably on the broker: the vendor must retry (503 + Retry-After)."""

    status = 503
    reason = "temporarily unavailable"

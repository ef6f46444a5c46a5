"""Typed errors of the admin API; the middleware alone turns them into `{"error": ...}` answers."""

from typing import ClassVar


class AdminError(Exception):
    status: ClassVar[int] = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BadRequest(AdminError):
    status = 400


class Unauthorized(AdminError):
    status = 401


class NotFound(AdminError):
    status = 404


class Conflict(AdminError):
    """Not now: what was asked collides with work in progress (a replay of a delivery being attempted)."""

    status = 409


class Unprocessable(AdminError):
    """Well-formed but not acceptable: a refused endpoint URL, a replay of nothing."""

    status = 422


class Unavailable(AdminError):
    status = 503

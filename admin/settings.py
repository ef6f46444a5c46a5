"""Admin API settings, read once from the environment; a bad or missing value stops the boot."""

from collections.abc import Mapping

import msgspec

from common.env import Group, SettingError, flag, optional_text, port, text
from common.settings import BROKER_AND_DATABASE, RETRY_DELAYS, WorkerSettings
from subscribers.schedule import DEFAULT_SCHEDULE, Schedule
from subscribers.settings import ALLOW_PRIVATE_ENDPOINTS, DELIVERY_PARK, DELIVERY_SCHEDULE

HOST = text("RESULTBUS_ADMIN_HOST", "127.0.0.1", help="the admin API's listener")
PORT = port("RESULTBUS_ADMIN_PORT", 8081, help="the admin API's port")
TOKEN = optional_text(
    "RESULTBUS_ADMIN_TOKEN", absent="(required)", help="bearer token, 16+ characters (unless NO_AUTH)"
)
NO_AUTH = flag("RESULTBUS_ADMIN_NO_AUTH", help="1: no authentication at all (a local setup only)")

SETTINGS = (
    BROKER_AND_DATABASE,
    Group("admin API", (HOST, PORT, TOKEN, NO_AUTH, ALLOW_PRIVATE_ENDPOINTS)),
    # The console shows the depth of the routers' and delivery workers' delay tiers, named from
    # their settings: set them as those workers have them.
    Group(
        "console (as the routers and delivery workers have them)",
        (RETRY_DELAYS, DELIVERY_SCHEDULE, DELIVERY_PARK),
    ),
)


class AdminSettings(msgspec.Struct, frozen=True, kw_only=True):
    worker: WorkerSettings  # broker, database and schema, as the workers read them
    host: str = HOST.default
    port: int = PORT.default
    # None only when authentication was switched off on purpose (RESULTBUS_ADMIN_NO_AUTH=1).
    token: str | None = None
    allow_private: bool = False
    # The routers' delay tiers and the delivery workers' schedule, to name their queues in the console.
    raw_retry_delays: tuple[float, ...] = RETRY_DELAYS.default
    delivery_schedule: Schedule = Schedule(tuple(DEFAULT_SCHEDULE))

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return f"AdminSettings(host={self.host!r}, port={self.port}, auth={self.token is not None})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "AdminSettings":
        token = TOKEN.read(env)
        no_auth = NO_AUTH.read(env)
        if token is None and not no_auth:
            raise SettingError(
                "RESULTBUS_ADMIN_TOKEN: not set (set a long random token, or RESULTBUS_ADMIN_NO_AUTH=1 "
                "for a local setup without authentication)"
            )
        if token is not None and len(token) < 16:
            raise SettingError("RESULTBUS_ADMIN_TOKEN: use at least 16 characters")
        return cls(
            worker=WorkerSettings.from_env(env),
            host=HOST.read(env),
            port=PORT.read(env),
            token=None if no_auth else token,
            allow_private=ALLOW_PRIVATE_ENDPOINTS.read(env),
            raw_retry_delays=RETRY_DELAYS.read(env),
            delivery_schedule=Schedule(DELIVERY_SCHEDULE.read(env), park=DELIVERY_PARK.read(env)),
        )

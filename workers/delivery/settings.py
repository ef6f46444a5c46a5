"""Delivery worker settings, read once from the environment at start-up."""

from collections.abc import Mapping
from typing import Any

import msgspec

from common.env import Group, Setting, SettingError, duration, integer, number
from common.settings import BROKER_AND_DATABASE
from subscribers.schedule import DEFAULT_SCHEDULE, Schedule
from subscribers.settings import ALLOW_PRIVATE_ENDPOINTS, DELIVERY_PARK, DELIVERY_SCHEDULE

JITTER = number(
    "RESULTBUS_DELIVERY_JITTER",
    Schedule(()).jitter,
    help="a retry waits between (1 - jitter) and 1 times its delay",
)
TIMEOUT = duration("RESULTBUS_DELIVERY_TIMEOUT", 15.0, minimum=0.01, help="one attempt, connect to last byte")
PER_ENDPOINT = integer(
    "RESULTBUS_DELIVERY_PER_ENDPOINT", 4, minimum=1, help="attempts in flight to one endpoint, per worker"
)
IN_FLIGHT = integer("RESULTBUS_DELIVERY_IN_FLIGHT", 256, minimum=1, help="attempts in flight per worker")
MAX_RESPONSE = integer("RESULTBUS_DELIVERY_MAX_RESPONSE", 4096, help="bytes of a subscriber's answer read")

# The fields read as they are, each by the setting that declares it (in the order `--help` lists them).
_FIELDS: dict[str, Setting[Any]] = {
    "timeout": TIMEOUT,
    "per_endpoint": PER_ENDPOINT,
    "in_flight": IN_FLIGHT,
    "max_response_bytes": MAX_RESPONSE,
    "allow_private": ALLOW_PRIVATE_ENDPOINTS,
}

SETTINGS = (
    BROKER_AND_DATABASE,
    Group("delivery", (DELIVERY_SCHEDULE, JITTER, DELIVERY_PARK, *_FIELDS.values())),
)


class DeliverySettings(msgspec.Struct, frozen=True, kw_only=True):
    schedule: Schedule = Schedule(tuple(DEFAULT_SCHEDULE))
    timeout: float = TIMEOUT.default  # one attempt, connect to last byte
    per_endpoint: int = PER_ENDPOINT.default  # attempts in flight to one endpoint, per worker
    in_flight: int = IN_FLIGHT.default  # attempts in flight per worker, all endpoints together
    max_response_bytes: int = MAX_RESPONSE.default
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "DeliverySettings":
        schedule = Schedule(
            DELIVERY_SCHEDULE.read(env), jitter=JITTER.read(env), park=DELIVERY_PARK.read(env)
        )
        if not 0 <= schedule.jitter < 1:
            raise SettingError("RESULTBUS_DELIVERY_JITTER: must be at least 0 and below 1")
        return cls(schedule=schedule, **{field: setting.read(env) for field, setting in _FIELDS.items()})

"""Delivery worker settings, read once from the environment at start-up."""

from collections.abc import Mapping

import msgspec

from common.env import SettingError, env_duration, env_flag, env_float, env_int, parse_durations
from subscribers.schedule import DEFAULT_SCHEDULE, Schedule


class DeliverySettings(msgspec.Struct, frozen=True, kw_only=True):
    schedule: Schedule = Schedule(tuple(DEFAULT_SCHEDULE))
    timeout: float = 15.0  # one attempt, connect to last byte
    per_endpoint: int = 4  # attempts in flight to one endpoint, per worker
    in_flight: int = 256  # attempts in flight per worker, all endpoints together
    max_response_bytes: int = 4096
    allow_private: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "DeliverySettings":
        d = cls()
        raw = env.get("RESULTBUS_DELIVERY_SCHEDULE")
        delays = d.schedule.delays
        if raw is not None:
            try:
                delays = parse_durations(raw)
            except ValueError as error:
                raise SettingError(f"RESULTBUS_DELIVERY_SCHEDULE: {error}") from None
        schedule = Schedule(
            delays,
            jitter=env_float(env, "RESULTBUS_DELIVERY_JITTER", d.schedule.jitter),
            park=env_duration(env, "RESULTBUS_DELIVERY_PARK", d.schedule.park, minimum=0.001),
        )
        if not 0 <= schedule.jitter < 1:
            raise SettingError("RESULTBUS_DELIVERY_JITTER: must be at least 0 and below 1")
        return cls(
            schedule=schedule,
            timeout=env_duration(env, "RESULTBUS_DELIVERY_TIMEOUT", d.timeout, minimum=0.01),
            per_endpoint=env_int(env, "RESULTBUS_DELIVERY_PER_ENDPOINT", d.per_endpoint, minimum=1),
            in_flight=env_int(env, "RESULTBUS_DELIVERY_IN_FLIGHT", d.in_flight, minimum=1),
            max_response_bytes=env_int(env, "RESULTBUS_DELIVERY_MAX_RESPONSE", d.max_response_bytes),
            allow_private=env_flag(env, "RESULTBUS_ALLOW_PRIVATE_ENDPOINTS"),
        )

"""The subscriber settings more than one role reads: the delivery workers, the checker and the admin
(its console names the delivery tiers' queues from the same schedule)."""

from common.env import duration, durations, flag
from subscribers.schedule import DEFAULT_SCHEDULE, Schedule

ALLOW_PRIVATE_ENDPOINTS = flag(
    "RESULTBUS_ALLOW_PRIVATE_ENDPOINTS", help="allow loopback, private and link-local endpoints"
)
DELIVERY_SCHEDULE = durations(
    "RESULTBUS_DELIVERY_SCHEDULE",
    DEFAULT_SCHEDULE,
    allow_empty=False,
    help="delays before each attempt of a delivery",
)
DELIVERY_PARK = duration(
    "RESULTBUS_DELIVERY_PARK", Schedule(()).park, minimum=0.001, help="wait of a task whose endpoint is busy"
)

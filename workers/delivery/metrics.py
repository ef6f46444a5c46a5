"""The delivery worker's Prometheus metrics (served on RESULTBUS_METRICS_PORT, see common/service.py)."""

import prometheus_client

ATTEMPTS = prometheus_client.Counter(
    "resultbus_delivery_attempts",
    "Delivery attempts, by outcome: succeeded, retry, failed (the schedule is exhausted), gone (410).",
    ["outcome"],
)
ATTEMPT_SECONDS = prometheus_client.Histogram(
    "resultbus_delivery_attempt_seconds",
    "One POST to a subscriber, connect to last byte (attempts made, not those moved on unattempted).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0),
)
FAILED = prometheus_client.Counter(
    "resultbus_delivery_failed", "Deliveries whose whole retry schedule failed (a delivery.failed event)."
)
DISABLED = prometheus_client.Counter(
    "resultbus_delivery_subscriptions_disabled",
    "Subscriptions disabled because their endpoint answered 410 Gone.",
)

"""The delivery worker's Prometheus metrics (served on RESULTBUS_METRICS_PORT, see common/service.py).
Imported by the delivery role only: a process exports every metric it has imported."""

import prometheus_client

DELIVERIES = prometheus_client.Counter(
    "resultbus_delivery_deliveries", "Deliveries created by the fan-out (one per matching subscription)."
)
ATTEMPTS = prometheus_client.Counter(
    "resultbus_delivery_attempts",
    "Delivery attempts settled, by outcome: succeeded, retry, failed (schedule exhausted), gone (410), "
    "skipped (endpoint failing or hanging, not called).",
    ["outcome"],
)
ATTEMPT_SECONDS = prometheus_client.Histogram(
    "resultbus_delivery_attempt_seconds",
    "From sending a delivery's POST to its answer (or its timeout), endpoints called only.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PARKED = prometheus_client.Counter(
    "resultbus_delivery_parked", "Tasks parked in a delay tier because their endpoint was at its limit."
)
FAILED = prometheus_client.Counter(
    "resultbus_delivery_failed", "Deliveries whose whole retry schedule failed (a delivery.failed event)."
)
DISABLED = prometheus_client.Counter(
    "resultbus_delivery_subscriptions_disabled",
    "Subscriptions disabled because their endpoint answered 410 Gone.",
)
SUPERSEDED = prometheus_client.Counter(
    "resultbus_delivery_superseded",
    "Deliveries of a subscription that wants only the latest, superseded by a newer event of their exam "
    "after an attempt (those superseded before one are noted in the attempt log only).",
)

"""The checker's Prometheus metrics: the same counts as its round summary line (served on
RESULTBUS_METRICS_PORT, see common/service.py)."""

import prometheus_client

CHECKS = prometheus_client.Counter(
    "resultbus_checker_checks", "Verification calls made, by outcome (alive, failed).", ["outcome"]
)
UNSUBSCRIBED = prometheus_client.Counter(
    "resultbus_checker_unsubscribed", "Subscriptions unsubscribed because their endpoint was dead."
)
ENDPOINTS_DROPPED = prometheus_client.Counter(
    "resultbus_checker_endpoints_dropped", "Endpoints found dead (each unsubscribes all its subscriptions)."
)
UNRECORDED = prometheus_client.Counter(
    "resultbus_checker_unrecorded", "Checks whose outcome could not be stored (database trouble)."
)
ROUND_SECONDS = prometheus_client.Histogram(
    "resultbus_checker_round_seconds",
    "From claiming a round's endpoints to recording the last of them.",
    buckets=(0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

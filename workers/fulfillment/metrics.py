"""The fulfillment worker's counters."""

import prometheus_client

CALLS = prometheus_client.Counter(
    "resultbus_itep_calls", "Calls to iTEP's fulfillment API, by outcome.", ["outcome"]
)
ORDERS = prometheus_client.Counter(
    "resultbus_itep_orders", "Orders taken from the command queue, by status.", ["status"]
)
PUBLISHED = prometheus_client.Counter(
    "resultbus_itep_order_changes_published", "Order changes published on the results exchange."
)

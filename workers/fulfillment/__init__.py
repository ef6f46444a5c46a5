"""`python -m workers fulfillment`: orders iTEP test IDs (iTEP's fulfillment API) for the orders
placed on the admin API or the `<prefix>.itep.orders` queue. See docs/itep-orders.md."""

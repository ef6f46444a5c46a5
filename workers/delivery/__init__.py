"""Delivering normalized events to subscribers: signed webhooks (Standard Webhooks) or gradebook
writes (gradebook/), each exam's events in version order per subscription (store.py).

Per worker: the fan-out (an event -> its deliveries, stored in their exam's order, and the tasks of
those that may go now), the attempts (a task -> one claimed attempt, recorded, and what follows it:
its retry, `delivery.failed`, `subscription.disabled`, the exam's next delivery), and the look for
held gradebook results a mapping released. See docs/subscribers.md and docs/destinations.md.
"""

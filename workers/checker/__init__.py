"""The dead-endpoint checker: one signed verification call per distinct subscriber endpoint per
interval; an endpoint failing several in a row has every subscription on it unsubscribed, the way
Inspera treats its own subscribers. See docs/checker.md."""

"""The admin API (`python -m admin`): subscriptions, look-ups and replay, on its own port."""

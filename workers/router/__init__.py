"""The router role: raw queue -> PostgreSQL -> results exchange."""

"""Independent workers: `python -m workers migrate|router|…`, each its own process and container."""

"""Runtime helpers shared by the ingress and the workers: logging, settings, broker topology."""

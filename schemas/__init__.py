"""Wire contracts shared by the ingress and the workers: no I/O lives here."""

"""A sources file with one source of every kind, and the environment that holds its secrets."""

FULL = """
[[source]]
id = "synap-main"
vendor = "synap"
event = "exam.resultsReleased"
max_body_bytes = 1024
allow_ips = ["127.0.0.0/8", "2001:db8::/32"]
[source.auth]
kind = "none"

[[source]]
id = "itep-acme"
vendor = "itep"
[source.auth]
kind = "basic"
username = "acme"
password_env = ["ITEP_ACME_PASSWORD", "ITEP_ACME_PASSWORD_NEXT"]
"""


FULL_ENV = {"ITEP_ACME_PASSWORD": "p1-s3cret", "ITEP_ACME_PASSWORD_NEXT": "p2-s3cret"}

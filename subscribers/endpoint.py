"""Endpoint URLs: what a subscriber may give us, and the one spelling of it that identifies an
endpoint (so that `HTTPS://Hooks.example.com:443/x` and `https://hooks.example.com/x` are one)."""

from typing import Final
from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
MAX_URL_LENGTH: Final = 2048


class InvalidEndpoint(ValueError):
    """The URL cannot be a subscriber endpoint; the message says why."""


def normalize_endpoint(url: str) -> str:
    """The canonical form of a subscriber URL; raises InvalidEndpoint for anything but http(s)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidEndpoint(f"longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise InvalidEndpoint(f"not a URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InvalidEndpoint("only http and https endpoints are allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidEndpoint("no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("credentials in the URL are not allowed")
    if parts.fragment:
        raise InvalidEndpoint("a fragment is not allowed")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))

"""Endpoint URLs: what a subscriber may give us, the host the HTTP client will actually connect to,
and the one spelling of it that identifies an endpoint (so that `HTTPS://Hooks.example.com:443/x`
and `https://hooks.example.com/x` are one).

The host is read as yarl (and so aiohttp) reads it, never as `urlsplit` does: yarl maps a Unicode host
through IDNA, under which `①②⑦.0.0.1`, the same in fullwidth digits, and `127。0。0。1` (ideographic
full stops) are all `127.0.0.1`: checking the `urlsplit` spelling would check a name that is never
connected to. Hosts that no resolver could take (an empty or 64-character label, a character IDNA refuses) are refused here, and so are
numeric hosts that resolvers read differently: `010.0.0.1` is 8.0.0.1 to `inet_aton` (octal) and
10.0.0.1 to a reader of decimals, `127.1` and `2130706433` are 127.0.0.1 to some and names to others.
An IPv4 address is four decimal numbers, nothing else.
"""

import ipaddress
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from yarl import URL

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
MAX_URL_LENGTH: Final = 2048
_MAX_HOST_LENGTH: Final = 253
_MAX_LABEL_LENGTH: Final = 63
# What a DNS name's labels hold once IDNA has made it ASCII (the underscore is no hostname character,
# but real names carry it and resolvers take it).
_LABEL_CHARACTERS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DIGITS: Final = frozenset("0123456789")
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


class InvalidEndpoint(ValueError):
    """The URL cannot be a subscriber endpoint; the message says why."""


def target(url: str) -> tuple[URL, str]:
    """`url` as the HTTP client will use it (the object to hand it, so that what was checked is what
    is connected to) and its host, checked (`connect_host`); raises InvalidEndpoint."""
    try:
        parsed = URL(url.strip())
    except (ValueError, UnicodeError) as error:  # yarl's IDNA encoding refused the host
        raise InvalidEndpoint(f"the host cannot be encoded: {error}") from None
    return parsed, connect_host(parsed.raw_host)


def is_address(host: str) -> bool:
    """Whether a host `connect_host` accepted is an IP address (which no resolver is asked about)."""
    return ":" in host or is_dotted_quad(host)


def connect_host(host: str | None) -> str:
    """The host as it will be connected to, checked: an IPv6 address, an IPv4 address in its one
    unambiguous form, or a DNS name a resolver can take. Without a trailing dot."""
    if not host:
        raise InvalidEndpoint("no host")
    if ":" in host:
        address, _, zone = host.partition("%")  # a zone (`fe80::1%25eth0`) is the interface's name
        try:
            compressed = ipaddress.IPv6Address(address).compressed
        except ValueError:
            raise InvalidEndpoint(f"host {host!r} is not an IPv6 address") from None
        return f"{compressed}%{zone}" if zone else compressed
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if ends_in_a_number(name):
        if not is_dotted_quad(name):
            raise InvalidEndpoint(
                f"host {host!r} is a numeric address in a form resolvers read differently: write an"
                " IPv4 address as four decimal numbers from 0 to 255, without leading zeros"
            )
        return name
    if len(name) > _MAX_HOST_LENGTH:
        raise InvalidEndpoint(f"host longer than {_MAX_HOST_LENGTH} characters")
    for label in labels:
        if not label:
            raise InvalidEndpoint(f"host {host!r} has an empty label")
        if len(label) > _MAX_LABEL_LENGTH:
            raise InvalidEndpoint(f"host {host!r} has a label longer than {_MAX_LABEL_LENGTH} characters")
        if not _LABEL_CHARACTERS.issuperset(label.lower()):
            raise InvalidEndpoint(f"host {host!r} holds a character no host name can")
    return name.lower()


def ends_in_a_number(host: str) -> bool:
    """Whether a URL parser reads `host` as an IPv4 address (WHATWG's "ends in a number"): its last
    label is decimal digits, or hex digits after `0x`. `a.b.1` and `0x7f.1` are, `example.com` is not."""
    labels = host.split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()
    last = labels[-1].lower()
    if last and _DIGITS.issuperset(last):
        return True
    return last.startswith("0x") and _HEX_DIGITS.issuperset(last[2:])


def is_dotted_quad(host: str) -> bool:
    """Four decimal numbers of 0 to 255 without leading zeros: the one form every resolver agrees on."""
    parts = host.split(".")
    return len(parts) == 4 and all(
        0 < len(p) <= 3 and _DIGITS.issuperset(p) and (p == "0" or p[0] != "0") and int(p) <= 255
        for p in parts
    )


def normalize_endpoint(url: str) -> str:
    """The canonical form of a subscriber URL, its host as it will be connected to (`bücher.example`
    as `xn--bcher-kva.example`); raises InvalidEndpoint for anything but http(s) to a valid host."""
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
    if not (parts.hostname or "").rstrip("."):
        raise InvalidEndpoint("no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidEndpoint("credentials in the URL are not allowed")
    if parts.fragment:
        raise InvalidEndpoint("a fragment is not allowed")
    _, host = target(url)
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))

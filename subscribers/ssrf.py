"""Keeping subscriber endpoints off our own network (SSRF).

Checked twice: when a subscription is created (a clear 422 for the operator) and at every
connection, in the resolver aiohttp uses, so that a name that later resolves elsewhere (DNS
rebinding) is refused at the moment we would connect to it.
"""

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver


class ForbiddenAddress(OSError):
    """The endpoint resolves to an address we refuse to call."""


def is_forbidden(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4 addresses carried inside IPv6 ones (mapped, 6to4, Teredo) reach the IPv4 host.
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if any(e is not None and _forbidden(e) for e in embedded):
            return True
    return _forbidden(ip)


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing names that resolve to a forbidden address."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private:
            for result in results:
                if is_forbidden(result["host"]):
                    raise ForbiddenAddress(f"{host} resolves to a forbidden address {result['host']}")
        return results

    async def close(self) -> None:
        await self._inner.close()


async def check_host(host: str, port: int, *, allow_private: bool) -> None:
    """Resolves `host` and raises ForbiddenAddress if any of its addresses is refused."""
    if allow_private:
        return
    resolver = GuardedResolver(allow_private=False)
    try:
        await resolver.resolve(host, port, socket.AF_UNSPEC)
    except ForbiddenAddress:
        raise
    except (OSError, UnicodeError) as error:  # UnicodeError: a name the resolver cannot even encode
        raise ForbiddenAddress(f"{host} does not resolve: {error}") from None
    finally:
        await resolver.close()

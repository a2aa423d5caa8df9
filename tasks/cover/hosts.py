"""Which addresses a download may reach: the public internet, and the private ones that
download.allow_private names.

Anything else (this machine, the local network, the link-local range where a cloud's metadata
service answers at 169.254.169.254) is refused, so that a URL, a playlist entry or a redirect
cannot make covermill fetch from inside the network it runs in. A host is judged by every
address it resolves to, so a public-looking name that resolves to 127.0.0.1 is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

WEB_SCHEMES = ("http", "https")
# RFC 1918 and IPv6 unique-local (fc00::/7): what "private network" means to a user
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


@dataclass(frozen=True)
class Refusal:
    """Why an address is not fetched, as the end of a sentence about the source."""

    place: str  # "localhost (127.0.0.1)", "a non-web address (ftp:)"
    kind: str  # "a loopback address (this machine)"
    address: str = ""  # what download.allow_private would need, when allowing it is possible

    def says(self, how: str) -> str:
        """The clause after "<source>: not downloaded, ": `how` is "it points to", "it redirects to", ..."""
        allow = f"; add {self.address} to download.allow_private in config.yaml if you mean it" if self.address else ""
        return f"{how} {self.place}, {self.kind}{allow}"


def unmapped(address: Address) -> Address:
    """The IPv4 address an IPv4-mapped IPv6 one reaches (::ffff:127.0.0.1 is 127.0.0.1), else itself."""
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def kind_of(address: Address) -> str | None:
    """What a non-public address is, in words; None for a public one."""
    address = unmapped(address)
    if address.is_unspecified:
        return "the unspecified address (this machine)"
    if address.is_loopback:
        return "a loopback address (this machine)"
    if address.is_link_local:
        return "a link-local address (where a cloud's metadata service answers)"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in PRIVATE_NETWORKS):
        return "a private-network address"
    if not address.is_global or address.is_reserved or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local):
        return "a reserved address, not on the public internet"
    return None


def is_allowed(address: Address, allowed: Sequence[Network]) -> bool:
    """A public address, or one inside a network the user allowed (in either spelling of a mapped one)."""
    return kind_of(address) is None or any(a in network for a in (address, unmapped(address)) for network in allowed)


def address_refusal(address: Address, allowed: Sequence[Network], host: str = "") -> Refusal | None:
    """Why a connection to `address` (which `host` resolved to) is refused, or None."""
    if is_allowed(address, allowed):
        return None
    plain = str(unmapped(address)).split("%")[0]  # an IPv6 scope ("fe80::1%eth0") is no part of the address to allow
    place = plain if not host or host.strip("[]") == plain else f"{host} ({plain})"
    return Refusal(place=place, kind=kind_of(address) or "", address=plain)


def addresses_of(host: str, port: int | None = None) -> list[Address]:
    """Every address `host` resolves to (an IP literal is itself); none when it does not resolve
    (the download then fails as unreachable, and a connection is checked again when it is made)."""
    try:
        found = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        return []
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))


def url_refusal(url: str, allowed: Sequence[Network]) -> Refusal | None:
    """Why `url` may not be fetched, or None: only http(s), and only to a host whose every
    address is public or allowed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in WEB_SCHEMES:
        return Refusal(place=f"a non-web address ({scheme or 'no scheme'}:)", kind="and only http and https are fetched")
    host = parts.hostname or ""
    try:
        port = parts.port
    except ValueError:
        port = None
    for address in addresses_of(host, port):
        refusal = address_refusal(address, allowed, host)
        if refusal:
            return refusal
    return None

"""Who is calling, from where: the client address behind trusted proxies, CIDR allowlists, and
the network settings (trusted proxies, TLS files).

Pure: no sockets, no clock. ``X-Forwarded-For`` is believed only as far as a chain of trusted
proxies vouches for it; everything to the left of the first untrusted hop could have been written
by the client and is ignored, so a client cannot choose its own address by sending the header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from campaignflow.errors import ConfigurationError

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_MAPPED_PREFIX = 96  # ::ffff:0:0/96 holds the IPv4-mapped addresses


class InvalidNetwork(ValueError):
    """An allowlist or trusted-proxy entry that is not a CIDR network."""

    def __init__(self, index: int, entry: str, reason: str) -> None:
        self.index = index
        self.entry = entry
        super().__init__(f"entry {index} ({entry!r}) is not a valid CIDR network: {reason}")


def parse_address(text: str) -> IPAddress | None:
    """An address as a peer or proxy writes it, or ``None`` when it is not one.

    Tolerates surrounding spaces, a port (``1.2.3.4:80``, ``[::1]:443``) and brackets; an
    IPv4-mapped IPv6 address (``::ffff:1.2.3.4``) becomes the IPv4 address, so a dual-stack
    listener and an IPv4 allowlist agree.
    """
    text = text.strip()
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or not _is_port(port):
            return None
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        text, _colon, port = text.partition(":")
        if not _is_port(":" + port):
            return None
    try:
        address = ip_address(text)
    except ValueError:
        return None
    return _unmapped(address)


def _is_port(suffix: str) -> bool:
    """Nothing, or ``:`` and a port number."""
    return not suffix or (
        suffix[0] == ":" and suffix[1:].isascii() and suffix[1:].isdigit() and len(suffix) <= 6
    )


def _unmapped(address: IPAddress) -> IPAddress:
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address in network for network in networks)


def forwarded_entries(header_values: Sequence[str]) -> list[str]:
    """Every hop of every ``X-Forwarded-For`` header, in order (several headers are one list,
    RFC 9110 §5.3); empty list elements are ignored, as RFC 9110 §5.6.1 asks."""
    entries = (part.strip() for value in header_values for part in value.split(","))
    return [entry for entry in entries if entry]


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The caller's address: the direct peer, unless the peer is a trusted proxy, in which case
    ``X-Forwarded-For`` is walked from the right and the first hop that is not a trusted proxy
    is the client ("rightmost untrusted": hops a client prepends are never reached).

    When every hop is a trusted proxy, the leftmost is the client. A malformed hop (``unknown``,
    an obfuscated name, garbage) ends the walk at the last good address, i.e. the trusted proxy
    that reported it: nothing left of it can be vouched for, and that proxy is the farthest hop
    known. ``None`` only when the peer itself is unknown (a Unix socket) or malformed.
    """
    current = parse_address(peer) if peer else None
    if current is None or not _within(current, trusted_proxies):
        return current
    for entry in reversed(forwarded_entries(forwarded_for)):
        hop = parse_address(entry)
        if hop is None:
            return current
        current = hop
        if not _within(hop, trusted_proxies):
            return hop
    return current


def parse_cidrs(entries: Sequence[str]) -> tuple[IPNetwork, ...]:
    """CIDR networks (IPv4 or IPv6; a bare address is a /32 or /128).

    Host bits must be zero: ``10.0.0.1/8`` is refused rather than read as ``10.0.0.0/8``, since
    whoever wrote it meant either a single host or a network, and guessing wrong opens or closes
    a whole range. IPv4-mapped IPv6 networks are stored as IPv4, like the addresses they match.
    """
    return tuple(_parse_cidr(index, entry) for index, entry in enumerate(entries))


def _parse_cidr(index: int, entry: str) -> IPNetwork:
    text = entry.strip()
    if not text:
        raise InvalidNetwork(index, entry, "it is empty")
    try:
        network = ip_network(text, strict=True)
    except ValueError as exc:
        reason = str(exc)
        if "host bits set" in reason:
            loose = ip_network(text, strict=False)
            reason = f"it has host bits set; write {loose} for the network or drop the prefix"
        raise InvalidNetwork(index, entry, reason) from exc
    return _unmapped_network(network)


def _unmapped_network(network: IPNetwork) -> IPNetwork:
    mapped = isinstance(network, IPv6Network) and network.prefixlen >= _MAPPED_PREFIX
    base = network.network_address.ipv4_mapped if isinstance(network, IPv6Network) else None
    if mapped and base is not None:
        return IPv4Network(f"{base}/{network.prefixlen - _MAPPED_PREFIX}")
    return network


def allowed(address: IPAddress | None, cidrs: Sequence[IPNetwork] | None) -> bool:
    """Whether ``address`` may call: ``None`` cidrs allow anyone; an empty list allows nobody;
    an unknown address is allowed only when there is no list."""
    if cidrs is None:
        return True
    return address is not None and _within(_unmapped(address), cidrs)


class NetworkSettings(BaseModel):
    """Where requests come from (trusted proxies) and how ``serve`` listens (TLS)."""

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="CIDR networks of the reverse proxies whose X-Forwarded-For is believed "
        "(e.g. the load balancer's subnet). Empty: the direct peer is the client.",
    )
    tls_cert_file: Path | None = Field(
        None, description="PEM certificate chain; with tls_key_file, `serve` speaks HTTPS."
    )
    tls_key_file: Path | None = Field(
        None, description="PEM private key of tls_cert_file (unencrypted)."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        parse_cidrs(value)
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> NetworkSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ConfigurationError(
                "Set both CAMPAIGNFLOW_NETWORK__TLS_CERT_FILE and "
                "CAMPAIGNFLOW_NETWORK__TLS_KEY_FILE, or neither."
            )
        return self

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return parse_cidrs(self.trusted_proxies)

    @property
    def tls(self) -> bool:
        """Whether ``serve`` terminates TLS itself."""
        return self.tls_cert_file is not None

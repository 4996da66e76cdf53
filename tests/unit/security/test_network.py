"""Client address behind proxies, CIDR parsing and allowlists, the network settings."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaignflow.config import Settings
from campaignflow.errors import ConfigurationError
from campaignflow.security.network import (
    InvalidNetwork,
    NetworkSettings,
    allowed,
    client_address,
    parse_address,
    parse_cidrs,
)

PROXIES = parse_cidrs(["10.0.0.0/8", "fd00::/8"])
CLIENT = ip_address("203.0.113.7")


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:8443", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
    ],
)
def test_addresses_are_read_as_proxies_write_them(text: str, expected: str) -> None:
    assert parse_address(text) == ip_address(expected)


@pytest.mark.parametrize(
    "text", ["unknown", "_hidden", "", "203.0.113.7:http", "[2001:db8::1", "[::1]x", "1.2.3"]
)
def test_what_is_not_an_address_is_none(text: str) -> None:
    assert parse_address(text) is None


# --- client address ---------------------------------------------------------------------------


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert client_address("203.0.113.7", ["198.51.100.1"], PROXIES) == CLIENT


def test_a_trusted_peer_forwards_the_client() -> None:
    assert client_address("10.0.0.2", ["203.0.113.7"], PROXIES) == CLIENT


def test_the_rightmost_untrusted_hop_is_the_client_not_what_it_prepended() -> None:
    # The client sent "X-Forwarded-For: 198.51.100.9"; two proxies appended what they saw.
    chain = ["198.51.100.9, 203.0.113.7, 10.0.0.5"]

    assert client_address("10.0.0.2", chain, PROXIES) == CLIENT


def test_several_headers_are_one_list_in_order() -> None:
    assert client_address("10.0.0.2", ["198.51.100.9", "203.0.113.7", "10.0.0.5"], PROXIES) == (
        CLIENT
    )


def test_empty_list_elements_are_ignored() -> None:
    assert client_address("10.0.0.2", ["203.0.113.7, , 10.0.0.5,"], PROXIES) == CLIENT


def test_when_every_hop_is_a_proxy_the_leftmost_is_the_client() -> None:
    assert client_address("10.0.0.2", ["10.9.9.9, 10.0.0.5"], PROXIES) == ip_address("10.9.9.9")


def test_a_trusted_peer_without_the_header_is_the_client() -> None:
    assert client_address("10.0.0.2", [], PROXIES) == ip_address("10.0.0.2")


def test_a_malformed_hop_ends_the_walk_at_the_proxy_that_reported_it() -> None:
    chain = ["198.51.100.9, unknown, 10.0.0.5"]

    assert client_address("10.0.0.2", chain, PROXIES) == ip_address("10.0.0.5")


def test_an_unknown_or_malformed_peer_has_no_address() -> None:
    assert client_address(None, ["203.0.113.7"], PROXIES) is None
    assert client_address("not-an-ip", ["203.0.113.7"], PROXIES) is None


def test_ipv6_proxies_and_ported_entries_are_walked() -> None:
    chain = ["[2001:db8::7]:51000, [fd00::5]:443"]

    assert client_address("[fd00::2]:443", chain, PROXIES) == ip_address("2001:db8::7")


def _unmapped(address: IPv4Address | IPv6Address) -> bool:
    return not isinstance(address, IPv6Address) or address.ipv4_mapped is None


def _untrusted(address: IPv4Address | IPv6Address) -> bool:
    return not any(address in network for network in PROXIES)


ipv4 = st.ip_addresses(v=4)
addresses = st.one_of(ipv4, st.ip_addresses(v=6)).filter(_unmapped)
untrusted = addresses.filter(_untrusted)
trusted = st.one_of(
    st.integers(1, 2**24 - 2).map(lambda i: IPv4Address(0x0A000000 + i)),
    st.integers(1, 2**120 - 1).map(lambda i: IPv6Address((0xFD << 120) + i)),
)
junk = st.one_of(addresses.map(str), st.text(max_size=20))


def _bracketed(address: IPv4Address | IPv6Address) -> str:
    return f"[{address}]" if address.version == 6 else str(address)


@given(peer=untrusted, forwarded=st.lists(junk, max_size=5))
def test_forwarded_for_from_an_untrusted_peer_never_changes_the_result(
    peer: IPv4Address | IPv6Address, forwarded: list[str]
) -> None:
    assert client_address(str(peer), forwarded, PROXIES) == peer


@given(
    client=untrusted,
    spoofed=st.lists(junk, max_size=4),
    proxies=st.lists(trusted, max_size=4),
    peer=trusted,
)
def test_what_the_client_prepends_and_proxies_append_never_changes_the_client(
    client: IPv4Address | IPv6Address,
    spoofed: list[str],
    proxies: list[IPv4Address | IPv6Address],
    peer: IPv4Address | IPv6Address,
) -> None:
    chain = [*(s.replace(",", " ") for s in spoofed), str(client), *map(str, proxies)]

    assert client_address(str(peer), [", ".join(chain)], PROXIES) == client


@given(peer=ipv4, forwarded=st.lists(ipv4, max_size=4), trusted_peer=st.booleans())
def test_ipv4_mapped_addresses_are_the_same_as_ipv4(
    peer: IPv4Address, forwarded: list[IPv4Address], trusted_peer: bool
) -> None:
    mapped = {a: f"::ffff:{a}" for a in [peer, *forwarded]}
    proxies = parse_cidrs([f"{peer}/32"]) if trusted_peer else PROXIES
    plain = client_address(str(peer), [", ".join(map(str, forwarded))], proxies)

    as_mapped = client_address(
        f"[{mapped[peer]}]:80", [", ".join(mapped[a] for a in forwarded)], proxies
    )

    assert as_mapped == plain
    assert isinstance(as_mapped, IPv4Address)


# --- CIDR lists -----------------------------------------------------------------------------


def test_cidrs_of_both_families_and_bare_addresses_parse() -> None:
    assert parse_cidrs([" 10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]) == (
        ip_network("10.0.0.0/8"),
        ip_network("2001:db8::/32"),
        ip_network("192.0.2.1/32"),
    )


def test_host_bits_are_refused_naming_the_entry_and_the_network_meant() -> None:
    with pytest.raises(InvalidNetwork) as raised:
        parse_cidrs(["10.0.0.0/8", "192.168.1.7/24"])

    assert raised.value.index == 1
    assert raised.value.entry == "192.168.1.7/24"
    assert "'192.168.1.7/24'" in str(raised.value)
    assert "192.168.1.0/24" in str(raised.value)


@pytest.mark.parametrize("entry", ["", "10.0.0.0/33", "example.com", "10.0.0.0/8/8"])
def test_malformed_cidrs_are_refused_naming_the_entry(entry: str) -> None:
    with pytest.raises(InvalidNetwork, match="entry 0") as raised:
        parse_cidrs([entry])

    assert raised.value.entry == entry
    assert isinstance(raised.value, ValueError)  # callers that only know ValueError catch it


def test_mapped_networks_match_the_ipv4_addresses_they_describe() -> None:
    (network,) = parse_cidrs(["::ffff:192.0.2.0/120"])

    assert network == ip_network("192.0.2.0/24")
    assert allowed(ip_address("192.0.2.9"), [network])


def test_no_list_allows_anyone_and_an_empty_one_nobody() -> None:
    assert allowed(CLIENT, None)
    assert allowed(None, None)
    assert not allowed(CLIENT, ())


def test_allowlists_match_by_network_and_family() -> None:
    cidrs = parse_cidrs(["203.0.113.0/24", "2001:db8::/32"])

    assert allowed(CLIENT, cidrs)
    assert allowed(ip_address("2001:db8::5"), cidrs)
    assert allowed(ip_address("::ffff:203.0.113.200"), cidrs)
    assert not allowed(ip_address("198.51.100.1"), cidrs)
    assert not allowed(ip_address("2001:db9::1"), cidrs)
    assert not allowed(None, cidrs)


# --- settings -------------------------------------------------------------------------------


def test_trusted_proxies_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_NETWORK__TRUSTED_PROXIES", '["10.0.0.0/8", "fd00::/8"]')

    assert Settings().network.trusted_networks == PROXIES


def test_a_bad_trusted_proxy_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAMPAIGNFLOW_NETWORK__TRUSTED_PROXIES", '["10.0.0.1/8"]')

    with pytest.raises(ValueError, match=r"entry 0 \('10.0.0.1/8'\)"):
        Settings()


def test_tls_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="both"):
        NetworkSettings(tls_cert_file=tmp_path / "cert.pem")
    with pytest.raises(ConfigurationError, match="both"):
        NetworkSettings(tls_key_file=tmp_path / "key.pem")

    pair = NetworkSettings(tls_cert_file=tmp_path / "c.pem", tls_key_file=tmp_path / "k.pem")

    assert pair.tls
    assert not NetworkSettings().tls

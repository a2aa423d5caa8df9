"""Which addresses a download may reach (tasks/cover/hosts.py): hosts resolved by the real resolver."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from pydantic import ValidationError

from covermill.tasks.cover.download import DownloadSettings
from covermill.tasks.cover.hosts import kind_of, url_refusal


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.4.5.6", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("10.1.2.3", "private-network"), ("172.16.0.1", "private-network"), ("192.168.1.20", "private-network"), ("fd00::1", "private-network"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("100.64.0.1", "reserved"), ("192.0.2.1", "reserved"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
])
def test_every_non_public_address_is_named(address, kind):
    assert kind in (kind_of(ip_address(address)) or "public")


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "142.250.74.46", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address):
    assert kind_of(ip_address(address)) is None
    assert url_refusal(f"http://[{address}]/song.ogg" if ":" in address else f"https://{address}/song.ogg", []) is None


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST", "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]"])
def test_a_host_is_judged_by_what_it_resolves_to(host):
    """Names and the other spellings of 127.0.0.1 resolve to it, and are refused as it is."""
    refusal = url_refusal(f"http://{host}/song.ogg", [])
    assert refusal is not None and refusal.address == "127.0.0.1" and refusal.kind == "a loopback address (this machine)"
    assert url_refusal(f"http://{host}/song.ogg", [ip_network("127.0.0.1/32")]) is None


def test_the_refusal_says_what_the_host_is_and_how_to_allow_it():
    assert url_refusal("http://localhost:8000/song.ogg", []).says("it points to") == (
        "it points to localhost (127.0.0.1), a loopback address (this machine); "
        "add 127.0.0.1 to download.allow_private in config.yaml if you mean it")
    assert url_refusal("http://169.254.169.254/latest/meta-data/", []).says("it redirects to") == (
        "it redirects to 169.254.169.254, a link-local address (where a cloud's metadata service answers); "
        "add 169.254.169.254 to download.allow_private in config.yaml if you mean it")


def test_only_the_allowed_networks_are_let_through():
    allowed = DownloadSettings(allow_private=["127.0.0.1", "192.168.1.0/24"]).allow_private
    for url in ("http://127.0.0.1:9/a.ogg", "http://192.168.1.77/a.ogg", "https://192.168.1.1:8443/a.ogg"):
        assert url_refusal(url, allowed) is None, url
    for url, address in (("http://127.0.0.2/a.ogg", "127.0.0.2"), ("http://192.168.2.1/a.ogg", "192.168.2.1"),
                         ("http://10.0.0.1/a.ogg", "10.0.0.1"), ("http://[::1]:9/a.ogg", "::1"),
                         ("http://169.254.169.254/", "169.254.169.254")):
        refusal = url_refusal(url, allowed)
        assert refusal is not None and refusal.address == address, url


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://10.0.0.1/song.ogg", "data:audio/ogg;base64,T2dnUw==",
                                 "gopher://127.0.0.1:6379/_INFO", "//127.0.0.1/song.ogg"])
def test_only_http_and_https_are_fetched_whatever_is_allowed(url):
    refusal = url_refusal(url, [ip_network("0.0.0.0/0"), ip_network("::/0")])
    assert refusal is not None and refusal.says("it redirects to").endswith("and only http and https are fetched")
    assert not refusal.address  # nothing to allow


def test_a_name_that_does_not_resolve_is_left_to_fail_as_unreachable():
    assert url_refusal("http://no-such-host.invalid/song.ogg", []) is None


def test_the_setting_takes_addresses_and_networks_only():
    assert [str(n) for n in DownloadSettings(allow_private=["10.0.0.5", "192.168.1.0/24", "::1"]).allow_private] == [
        "10.0.0.5/32", "192.168.1.0/24", "::1/128"]
    assert DownloadSettings().allow_private == []  # nothing private by default
    for bad in ("nas.local", "192.168.1.5/24", "all"):
        with pytest.raises(ValidationError, match="not a valid IPv4 or IPv6 network"):
            DownloadSettings(allow_private=[bad])

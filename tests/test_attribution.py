"""Unit tests for the pure attribution helpers: User-Agent, GeoIP, referrer source, client IP."""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import pytest

from datasaas.attribution import (
    Device,
    GeoResolver,
    client_ip,
    host_matches,
    parse_user_agent,
    referrer_source,
)

GEOIP_TEST_DB = Path(__file__).parent / "data" / "GeoLite2-City-Test.mmdb"

CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
)
CHROME_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
)
CHROME_PIXEL = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"
)
SAMSUNG_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 "
    "(KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36"
)
SAMSUNG_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 "
    "(KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
KINDLE_FIRE = (
    "Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Silk/124.3.2 like Chrome/124.0.6367.155 Safari/537.36"
)
FIREFOX_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0"
FIREFOX_UBUNTU = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
EDGE_WINDOWS_11 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0"
)
OPERA_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/110.0.0.0"
)
CHROME_CHROMEOS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) HeadlessChrome/124.0.6367.29 Safari/537.36"
)
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
UNKNOWN_MOBILE_BOT = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36 (compatible; ExampleCrawler/1.0)"
)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        pytest.param(CHROME_MAC, ("Chrome", "macOS", "desktop", False), id="chrome-macos"),
        pytest.param(SAFARI_MAC, ("Safari", "macOS", "desktop", False), id="safari-macos"),
        pytest.param(SAFARI_IPHONE, ("Safari", "iOS", "mobile", False), id="safari-iphone"),
        pytest.param(CHROME_IPHONE, ("Chrome", "iOS", "mobile", False), id="chrome-iphone"),
        pytest.param(CHROME_PIXEL, ("Chrome", "Android", "mobile", False), id="chrome-pixel"),
        pytest.param(
            SAMSUNG_TABLET, ("Samsung Internet", "Android", "tablet", False), id="samsung-tablet"
        ),
        pytest.param(
            SAMSUNG_PHONE, ("Samsung Internet", "Android", "mobile", False), id="samsung-phone"
        ),
        pytest.param(SAFARI_IPAD, ("Safari", "iOS", "tablet", False), id="safari-ipad"),
        pytest.param(KINDLE_FIRE, ("Amazon Silk", "Android", "tablet", False), id="kindle"),
        pytest.param(
            FIREFOX_ANDROID, ("Firefox", "Android", "mobile", False), id="firefox-android"
        ),
        pytest.param(FIREFOX_UBUNTU, ("Firefox", "Linux", "desktop", False), id="firefox-ubuntu"),
        pytest.param(FIREFOX_LINUX, ("Firefox", "Linux", "desktop", False), id="firefox-x11"),
        pytest.param(EDGE_WINDOWS_11, ("Edge", "Windows", "desktop", False), id="edge-windows"),
        pytest.param(OPERA_WINDOWS, ("Opera", "Windows", "desktop", False), id="opera-windows"),
        pytest.param(
            CHROME_CHROMEOS, ("Chrome", "ChromeOS", "desktop", False), id="chrome-chromeos"
        ),
        pytest.param(HEADLESS_CHROME, ("Chrome", "Linux", "desktop", False), id="headless"),
        pytest.param(CUBOT_PHONE, ("Chrome", "Android", "mobile", False), id="cubot-not-bot"),
        pytest.param(GOOGLEBOT, ("Googlebot", None, None, True), id="googlebot"),
        pytest.param(
            GOOGLEBOT_SMARTPHONE, ("Googlebot", "Android", None, True), id="googlebot-mobile"
        ),
        pytest.param(BINGBOT, ("bingbot", None, None, True), id="bingbot"),
        pytest.param(
            UNKNOWN_MOBILE_BOT, ("ExampleCrawler", "Android", "mobile", True), id="crawler-token"
        ),
        pytest.param("curl/8.5.0", ("curl", None, None, True), id="curl"),
        pytest.param("Wget/1.21.4", ("Wget", None, None, True), id="wget"),
        pytest.param(
            "python-requests/2.31.0", ("Python Requests", None, None, True), id="requests"
        ),
        pytest.param("Go-http-client/1.1", ("Go-http-client", None, None, True), id="go"),
        pytest.param("python-httpx/0.27.0", (None, None, None, False), id="httpx-not-bot"),
        pytest.param("", (None, None, None, True), id="empty"),
        pytest.param("   ", (None, None, None, True), id="blank"),
        pytest.param(None, (None, None, None, True), id="missing"),
    ],
)
def test_parse_user_agent(
    ua: str | None, expected: tuple[str | None, str | None, str | None, bool]
) -> None:
    device = parse_user_agent(ua)
    assert (device.browser, device.os, device.device_type, device.is_bot) == expected


def test_parse_user_agent_returns_the_same_frozen_device_for_repeated_strings() -> None:
    first = parse_user_agent(CHROME_MAC)
    assert parse_user_agent(CHROME_MAC) is first
    assert first == Device(browser="Chrome", os="macOS", device_type="desktop", is_bot=False)
    with pytest.raises(AttributeError):
        first.browser = "Firefox"  # type: ignore[misc]


@pytest.fixture(scope="module")
def geo() -> GeoResolver:
    return GeoResolver(GEOIP_TEST_DB)


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("81.2.69.142", ("United Kingdom", "London")),
        ("216.160.83.56", ("United States", "Milton")),
        ("89.160.20.112", ("Sweden", "Linköping")),
        ("67.43.156.1", ("Bhutan", None)),
        (" 81.2.69.142 ", ("United Kingdom", "London")),
        ("::ffff:81.2.69.142", ("United Kingdom", "London")),
        ("127.0.0.1", (None, None)),
        ("10.1.2.3", (None, None)),
        ("8.8.8.8", (None, None)),
        ("::1", (None, None)),
        ("not-an-ip", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
    ],
)
def test_geo_lookup(
    geo: GeoResolver, ip: str | None, expected: tuple[str | None, str | None]
) -> None:
    assert geo.lookup(ip) == expected


def test_geo_without_database_resolves_nothing() -> None:
    assert GeoResolver(None).lookup("81.2.69.142") == (None, None)


def test_geo_after_close_resolves_nothing() -> None:
    with GeoResolver(GEOIP_TEST_DB) as geo:
        assert geo.lookup("81.2.69.142") == ("United Kingdom", "London")
    assert geo.lookup("81.2.69.142") == (None, None)
    geo.close()


def test_geo_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.mmdb"):
        GeoResolver(tmp_path / "nope.mmdb")


def test_geo_unreadable_database_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_text("not a MaxMind database")
    with pytest.raises(ValueError, match=r"bogus\.mmdb"):
        GeoResolver(bogus)


@pytest.mark.parametrize(
    ("referrer", "utm_source", "expected"),
    [
        ("https://www.google.com/search?q=x", None, "google.com"),
        ("https://news.ycombinator.com/item?id=1", None, "news.ycombinator.com"),
        ("HTTPS://WWW.Twitter.COM/", None, "twitter.com"),
        ("https://t.co./abc", None, "t.co"),
        ("http://user:pw@duckduckgo.com:8080/?q=x", None, "duckduckgo.com"),
        ("https://www.google.com/", "newsletter", "newsletter"),
        (None, "  newsletter  ", "newsletter"),
        ("https://www.google.com/", "   ", "google.com"),
        ("https://www.google.com/", "x" * 256, "google.com"),
        (None, "x" * 255, "x" * 255),
        ("https://example.com/pricing", None, None),
        ("https://www.example.com/", None, None),
        ("https://blog.example.com/post", None, None),
        ("https://notexample.com/", None, "notexample.com"),
        (None, None, None),
        ("", None, None),
        ("not a url", None, None),
        ("javascript:alert(1)", None, None),
        ("http://", None, None),
        ("http://[::1", None, None),
        ("http://bad host.com/", None, None),
    ],
)
def test_referrer_source(
    referrer: str | None, utm_source: str | None, expected: str | None
) -> None:
    assert referrer_source(referrer, utm_source=utm_source, site_domain="example.com") == expected


def test_referrer_source_same_site_ignores_www_on_the_site_domain() -> None:
    assert (
        referrer_source("https://example.com/", utm_source=None, site_domain="www.example.com")
        is None
    )


TRUSTED = [ip_network("127.0.0.1/32"), ip_network("10.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        pytest.param("198.51.100.7", "203.0.113.9", "198.51.100.7", id="untrusted-peer"),
        pytest.param("127.0.0.1", None, "127.0.0.1", id="trusted-peer-no-header"),
        pytest.param("127.0.0.1", "203.0.113.9, 10.0.0.2", "203.0.113.9", id="two-proxies"),
        pytest.param(
            "127.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2", "203.0.113.9", id="spoofed-leftmost"
        ),
        pytest.param("127.0.0.1", "10.0.0.3,10.0.0.2", "10.0.0.3", id="all-trusted"),
        pytest.param("127.0.0.1", "203.0.113.9, garbage", "127.0.0.1", id="invalid-rightmost"),
        pytest.param(
            "127.0.0.1", "203.0.113.9, unknown, 10.0.0.2", "10.0.0.2", id="invalid-midway"
        ),
        pytest.param("127.0.0.1", "203.0.113.9:51234", "203.0.113.9", id="entry-with-port"),
        pytest.param(
            "127.0.0.1", "[2001:db8::9]:443, 10.0.0.2", "2001:db8::9", id="ipv6-entry-with-port"
        ),
        pytest.param("::1", "2001:db8::9", "2001:db8::9", id="ipv6-trusted-peer"),
        pytest.param("2001:db8::5", "203.0.113.9", "2001:db8::5", id="ipv6-untrusted-peer"),
        pytest.param("::ffff:127.0.0.1", "203.0.113.9", "203.0.113.9", id="ipv4-mapped-peer"),
        pytest.param("testclient", "203.0.113.9", None, id="peer-not-an-ip"),
        pytest.param(None, "203.0.113.9", None, id="no-peer"),
    ],
)
def test_client_ip(peer: str | None, forwarded_for: str | None, expected: str | None) -> None:
    assert client_ip(peer, forwarded_for, TRUSTED) == expected


def test_client_ip_without_trusted_networks_never_reads_the_header() -> None:
    assert client_ip("127.0.0.1", "203.0.113.9", []) == "127.0.0.1"


@pytest.mark.parametrize(
    ("hostname", "domain", "expected"),
    [
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", True),
        ("example.com", "www.example.com", True),
        ("shop.example.com", "example.com", True),
        ("a.b.example.com", "www.example.com", True),
        ("EXAMPLE.COM.", "example.com", True),
        ("example.com:8443", "example.com", True),
        ("localhost:8000", "localhost", True),
        ("[::1]:8000", "::1", True),
        ("notexample.com", "example.com", False),
        ("example.com.evil.io", "example.com", False),
        ("example.org", "example.com", False),
        ("com", "example.com", False),
        ("", "example.com", False),
        ("example.com", "", False),
    ],
)
def test_host_matches(hostname: str, domain: str, expected: bool) -> None:
    assert host_matches(hostname, domain) is expected

"""Pure first-touch attribution helpers: User-Agent parsing, GeoIP, referrer source, client IP.

Everything here is synchronous, side-effect free (apart from the GeoIP file handle) and safe
to call on untrusted request data: bad input yields ``None`` fields, never an exception.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import urlsplit

import geoip2.database
import geoip2.errors
import maxminddb
from ua_parser import Parser, load_lazy_builtins
from ua_parser.regex import Resolver as RegexResolver

__all__ = [
    "Device",
    "GeoResolver",
    "client_ip",
    "host_matches",
    "parse_user_agent",
    "referrer_source",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

# ---------------------------------------------------------------------------- User-Agent

# ua-parser family -> the name people use. Families not listed pass through unchanged.
BROWSER_NAMES: Final[dict[str, str | None]] = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Chrome Mobile WebView": "Chrome",
    # Headless Chromium is Chrome; it is deliberately not a bot (the project's browser tests).
    "HeadlessChrome": "Chrome",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "Opera Tablet": "Opera",
    "Other": None,
}

# ua-parser OS family -> the name people use. Families not listed pass through unchanged.
OS_NAMES: Final[dict[str, str | None]] = {
    "Mac OS X": "macOS",
    "Mac OS": "macOS",
    "Windows": "Windows",
    "Chrome OS": "ChromeOS",
    "iOS": "iOS",
    "Android": "Android",
    **dict.fromkeys(
        (
            "Linux",
            "Ubuntu",
            "Kubuntu",
            "Lubuntu",
            "Linux Mint",
            "Debian",
            "Fedora",
            "Red Hat",
            "CentOS",
            "openSUSE",
            "SUSE",
            "Arch Linux",
            "Gentoo",
            "Slackware",
            "Mandriva",
            "Mageia",
            "PCLinuxOS",
            "Puppy",
        ),
        "Linux",
    ),
    "Other": None,
}

_MOBILE_OSES: Final = frozenset(
    {
        "Windows Phone",
        "Windows Mobile",
        "BlackBerry OS",
        "Symbian OS",
        "Symbian^3",
        "Symbian^3 Anna",
        "Symbian^3 Belle",
        "KaiOS",
        "Firefox OS",
        "Nokia Series 40",
        "Nokia Series 30 Plus",
        "Sailfish",
        "Bada",
        "Maemo",
        "Brew MP",
    }
)
_DESKTOP_OSES: Final = frozenset(
    {"Windows", "macOS", "Linux", "ChromeOS", "FreeBSD", "OpenBSD", "NetBSD", "Solaris"}
)

# Android phones say "Mobile"; Android tablets (and Chrome's "request desktop site") do not.
_MOBILE_TOKEN: Final = re.compile(r"\bMobile\b")

# Crawler words anywhere, plus HTTP libraries at the start of the string. "Cubot" is a phone
# brand. python-httpx is left out on purpose: the project's API tests post events through
# httpx.AsyncClient, and no crawler identifies itself that way.
_BOT_PATTERN: Final = re.compile(
    r"(?<!cu)bot\b|crawl|spider|slurp"
    r"|^(?:curl|wget|python-requests|python-urllib|go-http-client|okhttp|libwww-perl"
    r"|java|apache-httpclient|node-fetch|axios|aiohttp|httpie)\b",
    re.IGNORECASE,
)

# Longer strings carry nothing a browser sends; the cap bounds the parse cache's memory.
_MAX_UA_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True)
class Device:
    """Browser, OS and device class of a User-Agent, plus whether it is a bot."""

    browser: str | None
    os: str | None
    device_type: str | None  # "desktop", "mobile", "tablet" or None when unknown
    is_bot: bool


_UNKNOWN_BOT: Final = Device(browser=None, os=None, device_type=None, is_bot=True)


@functools.cache
def _parser() -> Parser:
    # Built on first use (~0.2 s); the Rust resolver, with no cache of its own: _parse has one.
    return Parser(RegexResolver(load_lazy_builtins()))


def parse_user_agent(ua: str | None) -> Device:
    """Return the browser, OS, device type and bot flag of a User-Agent header.

    Bot rule: a missing or blank User-Agent; ua-parser's device family ``Spider``; the words
    bot (not "Cubot"), crawl, spider or slurp anywhere; or a string starting with a
    well-known HTTP client (curl, Wget, python-requests, python-urllib, Go-http-client,
    okhttp, libwww-perl, Java, Apache-HttpClient, node-fetch, axios, aiohttp, HTTPie).
    HeadlessChrome (Playwright, Puppeteer) and python-httpx are not bots.
    """
    if ua is None or not ua.strip():
        return _UNKNOWN_BOT
    return _parse(ua.strip()[:_MAX_UA_LENGTH])


@functools.lru_cache(maxsize=4096)
def _parse(ua: str) -> Device:
    result = _parser().parse(ua).with_defaults()
    ua_family = result.user_agent.family
    os_family = result.os.family
    device = result.device
    is_spider = device.family == "Spider"
    os_name = OS_NAMES.get(os_family, os_family)
    return Device(
        browser=BROWSER_NAMES.get(ua_family, ua_family),
        os=os_name,
        device_type=None
        if is_spider
        else _device_type(ua, os_family, os_name, device.family, device.brand),
        is_bot=is_spider or _BOT_PATTERN.search(ua) is not None,
    )


def _device_type(
    ua: str, os_family: str, os_name: str | None, family: str, brand: str | None
) -> str | None:
    if (
        family == "Generic Tablet"
        or brand == "Generic_Android_Tablet"
        or family.startswith(("iPad", "Kindle"))
        or os_family == "BlackBerry Tablet OS"
    ):
        return "tablet"
    if family == "Generic Smartphone" or family.startswith(("iPhone", "iPod")):
        return "mobile"
    if os_family == "Android":
        return "mobile" if _MOBILE_TOKEN.search(ua) else "tablet"
    if os_family == "iOS" or os_family in _MOBILE_OSES:
        return "mobile"
    if os_name in _DESKTOP_OSES:
        return "desktop"
    return None


# ---------------------------------------------------------------------------- GeoIP


class GeoResolver:
    """Country and city (English names) of an IP address from a MaxMind City database."""

    def __init__(self, db_path: Path | None) -> None:
        """Open ``db_path`` once; ``None`` gives a resolver that resolves nothing."""
        self._reader: geoip2.database.Reader | None = None
        if db_path is None:
            return
        try:
            self._reader = geoip2.database.Reader(str(db_path), mode=maxminddb.MODE_AUTO)
        except (OSError, maxminddb.InvalidDatabaseError) as exc:
            raise ValueError(
                f"GeoIP database {str(db_path)!r} cannot be opened as a MaxMind City database: "
                f"{exc}"
            ) from exc

    def lookup(self, ip: str | None) -> tuple[str | None, str | None]:
        """Return ``(country, city)`` for ``ip``; ``(None, None)`` when unknown or invalid."""
        address = _parse_ip(ip)
        if self._reader is None or address is None or not address.is_global:
            return None, None
        try:
            response = self._reader.city(address)
        except (geoip2.errors.AddressNotFoundError, ValueError, maxminddb.InvalidDatabaseError):
            return None, None
        country: str | None = response.country.name
        city: str | None = response.city.name
        return country, city

    def close(self) -> None:
        """Release the database file; later lookups resolve nothing."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> Self:
        """Return the resolver itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the database."""
        self.close()


# ---------------------------------------------------------------------------- Referrer

MAX_SOURCE_LENGTH: Final = 255

_LABEL: Final = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME: Final = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def referrer_source(
    referrer: str | None, *, utm_source: str | None, site_domain: str
) -> str | None:
    """Return the traffic source: ``utm_source``, else the external referrer host without www."""
    if utm_source is not None:
        utm = utm_source.strip()
        if utm and len(utm) <= MAX_SOURCE_LENGTH:
            return utm
    if referrer is None or not referrer.strip():
        return None
    try:
        host = urlsplit(referrer.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = _strip_www(host.rstrip("."))
    if not host or not (_HOSTNAME.match(host) or _parse_ip(host) is not None):
        return None
    if host_matches(host, site_domain):
        return None
    return host


def host_matches(hostname: str, domain: str) -> bool:
    """Return whether ``hostname`` is ``domain`` or a subdomain of it (www., port, case ignored)."""
    host = _normalise_host(hostname)
    site = _normalise_host(domain)
    if not host or not site:
        return False
    return host == site or host.endswith("." + site)


def _normalise_host(value: str) -> str:
    host = value.strip().lower()
    if host.startswith("["):  # "[2001:db8::1]:8443"
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    return _strip_www(host.rstrip("."))


def _strip_www(host: str) -> str:
    return host.removeprefix("www.")


# ---------------------------------------------------------------------------- Client IP


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted: Sequence[IPv4Network | IPv6Network],
) -> str | None:
    """Return the client address: the socket peer, or X-Forwarded-For as seen by trusted proxies.

    The header is only read when the peer is inside a ``trusted`` network. It is then walked
    from the right, skipping trusted hops, and the first untrusted entry is the client. An
    invalid entry stops the walk at the last trusted hop (or the peer). A peer that is not an
    IP address (e.g. Starlette's ``testclient``) gives ``None``.
    """
    peer_ip = _parse_ip(peer)
    if peer_ip is None:
        return None
    client = peer_ip
    if forwarded_for and _is_trusted(client, trusted):
        for entry in reversed(forwarded_for.split(",")):
            hop = _parse_ip(_strip_port(entry.strip()))
            if hop is None:
                break
            client = hop
            if not _is_trusted(hop, trusted):
                break
    return str(client)


def _is_trusted(ip: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(ip in network for network in trusted)


def _strip_port(entry: str) -> str:
    if entry.startswith("[") and "]" in entry:  # "[2001:db8::1]:443"
        return entry[1 : entry.index("]")]
    if entry.count(":") == 1:  # "203.0.113.9:51234"
        return entry.partition(":")[0]
    return entry


def _parse_ip(value: str | None) -> IPAddress | None:
    """Return the address in ``value`` (IPv4-mapped IPv6 unwrapped), or ``None`` if invalid."""
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address

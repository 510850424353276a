"""The demo site's model: its domain, run defaults, and the tables traffic is drawn from.

Sources (search, social, Hacker News with a launch-day spike, newsletter and paid UTM campaigns,
direct), pages, countries with their cities and time zones, a desktop/mobile/tablet mix,
weekday/weekend and local time-of-day rhythms with slow growth, the funnel rates, and one-time
and monthly recurring plans priced in USD, EUR, GBP or JPY. Data only: ``planner`` draws from
it. The site's id is ``config.DEMO_SITE_ID``, so front doors can name it without the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEMO_DOMAIN: Final = "demo.example.com"
DEFAULT_VISITORS: Final = 2000
DEFAULT_DAYS: Final = 30
DEFAULT_SEED: Final = 42


@dataclass(frozen=True, slots=True)
class Source:
    """A traffic source: its share, referrer, UTM tags, landing pages and conversion."""

    weight: float
    referrer: str | None
    utm: tuple[str, str, str] | None  # utm_source, utm_medium, utm_campaign
    landings: tuple[str, ...]
    conversion: float  # signup likelihood relative to the average visitor


_BLOG_LAUNCH = "/blog/launch-week"
_BLOG_COUNTING = "/blog/how-we-count-visitors"
_BLOG_PRIVACY = "/blog/privacy-friendly-analytics"
_DOCS = "/docs/getting-started"
HACKER_NEWS = "https://news.ycombinator.com/item?id=41829137"

SOURCES: Final = (
    Source(30, None, None, ("/", "/", "/pricing"), 1.2),
    Source(24, "https://www.google.com/", None, ("/", _DOCS, _BLOG_PRIVACY, "/features"), 1.1),
    Source(3, "https://www.google.com/", ("google", "cpc", "brand"), ("/", "/pricing"), 1.4),
    Source(7, "https://twitter.com/", None, ("/", _BLOG_LAUNCH, "/changelog"), 0.8),
    Source(6, HACKER_NEWS, None, (_BLOG_COUNTING,), 0.5),
    Source(4, "https://www.reddit.com/r/SaaS/", None, (_BLOG_COUNTING, "/"), 0.7),
    Source(4, "https://github.com/acme/analytics", None, (_DOCS, "/"), 1.0),
    Source(3, "https://duckduckgo.com/", None, ("/", _BLOG_PRIVACY), 1.1),
    Source(3, "https://www.bing.com/", None, ("/", "/features"), 0.9),
    Source(3, "https://www.linkedin.com/", None, ("/", _BLOG_LAUNCH), 0.9),
    Source(2, "https://www.producthunt.com/posts/acme-analytics", None, ("/",), 1.5),
    Source(6, None, ("newsletter", "email", "weekly_digest"), (_BLOG_LAUNCH, "/changelog"), 2.0),
)

PAGES: Final = {
    "/": "Acme Analytics — simple, privacy-friendly analytics",
    "/pricing": "Pricing — Acme Analytics",
    "/features": "Features — Acme Analytics",
    _DOCS: "Getting started — Acme Analytics docs",
    "/docs/goals": "Tracking goals — Acme Analytics docs",
    "/docs/revenue": "Revenue attribution — Acme Analytics docs",
    _BLOG_LAUNCH: "Launch week recap — Acme Analytics blog",
    _BLOG_COUNTING: "How we count visitors without cookies — Acme Analytics blog",
    _BLOG_PRIVACY: "Privacy-friendly analytics in 2026 — Acme Analytics blog",
    "/changelog": "Changelog — Acme Analytics",
    "/about": "About us — Acme Analytics",
    "/signup": "Create your account — Acme Analytics",
    "/checkout": "Checkout — Acme Analytics",
}
# Where visitors go next within a session.
NEXT_PAGES: Final = {
    "/pricing": 5,
    "/features": 3,
    "/": 3,
    _DOCS: 3,
    "/docs/goals": 2,
    "/docs/revenue": 1,
    "/changelog": 1,
    "/about": 1,
    _BLOG_COUNTING: 1,
    _BLOG_PRIVACY: 1,
}


@dataclass(frozen=True, slots=True)
class Country:
    """A visitor country: its share, cities, typical UTC offset and payment currency."""

    weight: float
    name: str
    cities: tuple[str, ...]  # most visited first
    utc_offset: float  # hours, a typical offset for the country's population
    currency: str


_US_CITIES: Final = (
    "New York", "San Francisco", "Los Angeles", "Chicago", "Austin", "Seattle", "Boston",
)  # fmt: skip
COUNTRIES: Final = (
    Country(34, "United States", _US_CITIES, -6, "USD"),
    Country(9, "United Kingdom", ("London", "Manchester", "Bristol", "Edinburgh"), 0, "GBP"),
    Country(8, "Germany", ("Berlin", "Munich", "Hamburg", "Cologne"), 1, "EUR"),
    Country(7, "India", ("Bengaluru", "Mumbai", "New Delhi", "Pune"), 5.5, "USD"),
    Country(5, "Canada", ("Toronto", "Vancouver", "Montreal"), -5, "USD"),
    Country(5, "France", ("Paris", "Lyon", "Toulouse"), 1, "EUR"),
    Country(4, "Japan", ("Tokyo", "Osaka", "Yokohama"), 9, "JPY"),
    Country(3, "Netherlands", ("Amsterdam", "Rotterdam", "Utrecht"), 1, "EUR"),
    Country(3, "Brazil", ("São Paulo", "Rio de Janeiro", "Belo Horizonte"), -3, "USD"),
    Country(3, "Australia", ("Sydney", "Melbourne", "Brisbane"), 10, "USD"),
    Country(3, "Spain", ("Madrid", "Barcelona", "Valencia"), 1, "EUR"),
    Country(2, "Sweden", ("Stockholm", "Gothenburg", "Malmö"), 1, "EUR"),
    Country(2, "Poland", ("Warsaw", "Kraków", "Wrocław"), 1, "EUR"),
    Country(1, "Singapore", ("Singapore",), 8, "USD"),
)
NO_CITY: Final = 0.05  # GeoIP often knows the country but not the city


@dataclass(frozen=True, slots=True)
class Device:
    """A browser, OS and device type with its share of visitors."""

    weight: float
    browser: str
    os: str
    device_type: str


DEVICES: Final = (
    Device(16, "Chrome", "macOS", "desktop"),
    Device(17, "Chrome", "Windows", "desktop"),
    Device(8, "Safari", "macOS", "desktop"),
    Device(6, "Edge", "Windows", "desktop"),
    Device(3, "Firefox", "Windows", "desktop"),
    Device(1.5, "Firefox", "macOS", "desktop"),
    Device(1.5, "Firefox", "Linux", "desktop"),
    Device(2, "Chrome", "Linux", "desktop"),
    Device(1, "Chrome", "ChromeOS", "desktop"),
    Device(0.5, "Opera", "Windows", "desktop"),
    Device(20, "Safari", "iOS", "mobile"),
    Device(13, "Chrome", "Android", "mobile"),
    Device(2, "Chrome", "iOS", "mobile"),
    Device(2, "Samsung Internet", "Android", "mobile"),
    Device(0.5, "Firefox", "Android", "mobile"),
    Device(3, "Safari", "iOS", "tablet"),
    Device(1, "Chrome", "Android", "tablet"),
)
DEVICE_CONVERSION: Final = {"desktop": 1.0, "mobile": 0.5, "tablet": 0.8}


@dataclass(frozen=True, slots=True)
class Plan:
    """A product visitors buy: one-time or monthly, with its price per currency."""

    product: str
    recurring: bool
    weight: float
    prices: dict[str, int]  # minor units per currency


PLANS: Final = (
    Plan("Lifetime", False, 30, {"USD": 14900, "EUR": 13900, "GBP": 11900, "JPY": 22000}),
    Plan("Pro monthly", True, 55, {"USD": 2900, "EUR": 2700, "GBP": 2300, "JPY": 4400}),
    Plan("Team monthly", True, 15, {"USD": 9900, "EUR": 9200, "GBP": 7900, "JPY": 15000}),
)

# Local time of day (0-23 h) and day of week (Monday first) traffic weights.
HOURLY: Final = (
    0.20, 0.12, 0.08, 0.06, 0.06, 0.10, 0.25, 0.50, 0.80, 1.00, 1.05, 1.00,
    0.95, 1.00, 1.05, 1.00, 0.90, 0.80, 0.70, 0.65, 0.60, 0.55, 0.45, 0.30,
)  # fmt: skip
WEEKDAY: Final = (1.0, 1.05, 1.05, 1.0, 0.9, 0.6, 0.65)
GROWTH: Final = 0.35  # the last day gets 35 % more traffic than the first

SIGNUP_RATE: Final = 0.08
PURCHASE_RATE: Final = 0.32  # of signups
NEWSLETTER_RATE: Final = 0.04
# Subscribers who come back often sign up to another list: goals completed more than once per
# visitor, so a goal's unique_visitors is below its completion_count, as in the reference.
NEWSLETTER_LISTS: Final = ("product_updates", "weekly_digest", "changelog")
NEWSLETTER_REPEAT: Final = 0.4
RETENTION: Final = 0.9  # a subscriber renews the next month
LONG_STANDING: Final = 0.02  # visitors who subscribed before the window
REFUND_ONE_TIME: Final = 0.12
REFUND_RECURRING: Final = 0.05
HN_SPIKE: Final = 0.7  # share of Hacker News visitors arriving on the launch day

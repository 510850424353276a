"""The tables. Instants end in ``_at`` (UTC), money is integer minor units, names are singular.

Visitors get an integer surrogate key (``visitor.id``) so that every distinct count runs over
integers; ``visitor_slot`` holds one row per (site, 15-minute UTC slot, visitor) with any activity,
and ``activity_bitmap`` caches, per finished UTC day and hour, roaring bitmaps of the visitors
active (overall and per goal), so that "distinct visitors in a range" is a union of a few bitmaps
plus raw rows for the ragged edges of the range.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from datasaas.storage.types import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata = MetaData(naming_convention=NAMING_CONVENTION)
metadata = SQLModel.metadata


def _at(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime(), nullable=nullable, index=index)


def _fk(target: str, *, big: bool = False) -> Any:
    return Field(
        sa_column_args=[ForeignKey(target, ondelete="CASCADE")],
        sa_type=BigInteger if big else Integer,
        nullable=False,
    )


class Site(SQLModel, table=True):
    """A tracked website; ``currency`` is the reporting currency (ISO 4217)."""

    __tablename__ = "site"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    domain: str = Field(max_length=253)
    currency: str = Field(default="USD", max_length=3)
    created_at: datetime = _at()


class ApiKey(SQLModel, table=True):
    """An API key of one site. Only the SHA-256 of the secret is kept, plus a display prefix."""

    __tablename__ = "api_key"

    id: str = Field(primary_key=True, max_length=32)
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", index=True, max_length=64)
    scope: str = Field(max_length=16)
    name: str | None = Field(default=None, max_length=200)
    prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _at()
    revoked_at: datetime | None = _at(nullable=True)


class Visitor(SQLModel, table=True):
    """A visitor of a site, keyed by the client's string id; holds the first-touch attributes."""

    __tablename__ = "visitor"
    __table_args__ = (UniqueConstraint("site_id", "uid"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", max_length=64)
    uid: str = Field(max_length=128)
    first_seen_at: datetime = _at()
    first_pageview_at: datetime | None = _at(nullable=True)
    landing_url: str | None = Field(default=None, max_length=2048)
    referrer: str | None = Field(default=None, max_length=2048)
    source: str | None = Field(default=None, max_length=255)
    utm_source: str | None = Field(default=None, max_length=255)
    utm_medium: str | None = Field(default=None, max_length=255)
    utm_campaign: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=100)
    city: str | None = Field(default=None, max_length=100)
    browser: str | None = Field(default=None, max_length=64)
    os: str | None = Field(default=None, max_length=64)
    device_type: str | None = Field(default=None, max_length=16)


class Pageview(SQLModel, table=True):
    """One pageview from the tracker."""

    __tablename__ = "pageview"
    __table_args__ = (Index("ix_pageview_site_id_occurred_at", "site_id", "occurred_at"),)

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", max_length=64)
    visitor_id: int = _fk("visitor.id")
    session_id: str = Field(max_length=128)
    occurred_at: datetime = _at()
    url: str | None = Field(default=None, max_length=2048)
    hostname: str | None = Field(default=None, max_length=253)
    pathname: str | None = Field(default=None, max_length=2048)
    referrer: str | None = Field(default=None, max_length=2048)
    title: str | None = Field(default=None, max_length=1024)


class VisitorSlot(SQLModel, table=True):
    """Visitor activity (pageview, goal completion or payment) per site and 15-minute UTC slot."""

    __tablename__ = "visitor_slot"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    slot: int = Field(primary_key=True)
    visitor_id: int = Field(foreign_key="visitor.id", ondelete="CASCADE", primary_key=True)


class Goal(SQLModel, table=True):
    """A goal name ever recorded by a site."""

    __tablename__ = "goal"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", max_length=64)
    name: str = Field(max_length=64)
    created_at: datetime = _at()


class GoalCompletion(SQLModel, table=True):
    """One completion of a goal by a visitor."""

    __tablename__ = "goal_completion"
    __table_args__ = (
        Index("ix_goal_completion_site_range", "site_id", "completed_at", "goal_id", "visitor_id"),
        Index("ix_goal_completion_goal_keyset", "goal_id", "completed_at", "id"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", max_length=64)
    goal_id: int = _fk("goal.id")
    visitor_id: int = _fk("visitor.id")
    completed_at: datetime = _at()
    url: str | None = Field(default=None, max_length=2048)
    properties: dict[str, Any] | None = Field(default=None, sa_column=Column("metadata", JSON))


class Payment(SQLModel, table=True):
    """A payment, refund or renewal. ``amount_minor`` is in ``currency``; ``reporting_amount_minor``
    in the site's currency at ``fx_rate`` (ECB reference rate of ``fx_rate_date``). A recurring
    payment has a billing interval and covers ``[paid_at, covers_until_at)``; others have nulls."""

    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("site_id", "transaction_id"),
        Index("ix_payment_site_id_paid_at", "site_id", "paid_at"),
        Index("ix_payment_site_id_original_transaction_id", "site_id", "original_transaction_id"),
        Index("ix_payment_site_id_covers_until_at", "site_id", "covers_until_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", max_length=64)
    visitor_id: int = _fk("visitor.id")
    transaction_id: str = Field(max_length=255)
    payment_type: str = Field(max_length=16)
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    reporting_amount_minor: int = Field(sa_type=BigInteger)
    reporting_currency: str = Field(max_length=3)
    fx_rate: str = Field(max_length=32)
    fx_rate_date: str | None = Field(default=None, max_length=10)
    product_name: str | None = Field(default=None, max_length=255)
    original_transaction_id: str | None = Field(default=None, max_length=255)
    paid_at: datetime = _at()
    created_at: datetime = _at()
    billing_interval: str | None = Field(default=None, max_length=8)
    billing_interval_count: int | None = Field(default=None)
    covers_until_at: datetime | None = _at(nullable=True)
    provider: str = Field(default="api", max_length=16, sa_column_kwargs={"server_default": "api"})


class IdempotencyRecord(SQLModel, table=True):
    """A replayable response to a POST made with an ``Idempotency-Key`` header, per API key."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: str = Field(foreign_key="api_key.id", ondelete="CASCADE", max_length=32)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    status_code: int
    response_body: str
    created_at: datetime = _at(index=True)


class HourVersion(SQLModel, table=True):
    """Bumped whenever an event lands on a UTC hour that is already over (a backdated write),
    so that hour's cached bitmaps, and its day's, are known to be stale."""

    __tablename__ = "hour_version"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    hour: int = Field(primary_key=True)
    version: int = Field(default=0)


class ActivityBitmap(SQLModel, table=True):
    """Roaring bitmap of the visitor keys active in one finished UTC period (an hour or a day):
    any activity (``goal_id`` 0) or completions of one goal, with its completion count in
    ``events``. ``period`` is the period's start in Unix seconds divided by ``span`` seconds.

    Derived data: an hour is built from the raw tables, a day from its 24 hours, on first read;
    either is rebuilt when ``version`` differs from its ``hour_version`` (for a day, the sum over
    its hours). Never the source of truth.
    """

    __tablename__ = "activity_bitmap"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    span: int = Field(primary_key=True)
    period: int = Field(primary_key=True)
    goal_id: int = Field(primary_key=True)
    version: int
    events: int
    visitors: bytes = Field(sa_type=LargeBinary)


class HealthCheck(SQLModel, table=True):
    """One row per serving process, upserted by ``/readyz`` to prove the database takes writes."""

    __tablename__ = "health_check"

    name: str = Field(primary_key=True, max_length=64)
    checked_at: datetime = _at()


class ProviderConfig(SQLModel, table=True):
    """A payment provider connected to a site: the signing secret its webhooks are verified with.

    The secret must be kept as given (verification needs it); it is never printed back.
    """

    __tablename__ = "provider_config"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    provider: str = Field(primary_key=True, max_length=16)
    secret: str = Field(max_length=512)
    created_at: datetime = _at()
    updated_at: datetime = _at()


class ProviderEvent(SQLModel, table=True):
    """A provider webhook event already handled: a redelivery of the same id changes nothing.

    Written in the same transaction as the payments the event caused.
    """

    __tablename__ = "provider_event"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    provider: str = Field(primary_key=True, max_length=16)
    event_id: str = Field(primary_key=True, max_length=255)
    event_type: str = Field(max_length=128)
    outcome: str = Field(max_length=32)
    received_at: datetime = _at()


class ProviderCustomer(SQLModel, table=True):
    """A provider's customer id and the visitor it was first linked to (checkout metadata), so
    that renewals carrying no metadata are attributed to the same visitor."""

    __tablename__ = "provider_customer"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    provider: str = Field(primary_key=True, max_length=16)
    customer_id: str = Field(primary_key=True, max_length=255)
    visitor_uid: str = Field(max_length=128)
    linked_at: datetime = _at()


class RevenueRollup(SQLModel, table=True):
    """Revenue of one finished UTC period (an hour or a day), in the site's minor units: new
    revenue (one-time + recurring), refunds, and a roaring bitmap of the paying visitors (a
    non-refund payment of amount > 0). ``period`` is as in ``activity_bitmap``.

    Derived data, versioned like ``activity_bitmap`` by ``hour_version`` (every payment write
    and delete touches its hour): built from ``payment`` on first read or by the warm-up, a day
    from its 24 hours. Never the source of truth.
    """

    __tablename__ = "revenue_rollup"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    span: int = Field(primary_key=True)
    period: int = Field(primary_key=True)
    version: int
    new_minor: int = Field(sa_type=BigInteger)
    refund_minor: int = Field(sa_type=BigInteger)
    payers: bytes = Field(sa_type=LargeBinary)
    payer_amounts: bytes | None = Field(default=None, sa_type=LargeBinary, nullable=True)
    """Per visitor with any payment in the period: new revenue and refunds, in minor units
    (``revenue_rollups.PayerAmounts``); what filtered reads and breakdowns sum. Null on rows
    built before migration 0010: rebuilt when a read needs them."""


class CompletionLevel(SQLModel, table=True):
    """The completion levels of one finished UTC period (``storage.levels``): per goal, the
    visitors with more than k completions, serialized. ``period`` as in ``activity_bitmap``.

    Derived data, versioned by ``hour_version`` like ``activity_bitmap``: written by the
    warm-up after an import, loaded into memory by the warm-up at start; reads check the
    version as for levels they built themselves. Never the source of truth.
    """

    __tablename__ = "completion_level"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    span: int = Field(primary_key=True)
    period: int = Field(primary_key=True)
    version: int
    levels: bytes = Field(sa_type=LargeBinary)


class DimensionSnapshot(SQLModel, table=True):
    """The per-value visitor bitmaps of one dimension of a site as a process last kept them
    (``storage.dimensions``): values, ``high``, holes and pending visitors, serialized. A
    worker loads it and re-reads only what may have changed since, instead of scanning every
    visitor. Derived data, never the source of truth; rewritten as the index grows.
    """

    __tablename__ = "dimension_snapshot"

    site_id: str = Field(foreign_key="site.id", ondelete="CASCADE", primary_key=True, max_length=64)
    dimension: str = Field(primary_key=True, max_length=32)
    high: int = Field(sa_type=BigInteger)
    state: bytes = Field(sa_type=LargeBinary)


from datasaas.storage import live_models as live_models  # noqa: E402  (§14 tables)

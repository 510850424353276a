"""Payment providers: site configuration, and verified webhook events turned into payments.

An event goes through the same resolver as ``POST /api/v1/payments`` (currency conversion,
refund ceilings, idempotent transaction ids, billing intervals), so a Stripe payment and an API
payment are the same kind of row; ``provider`` says which. Verification happens on the raw body
before anything is parsed into the domain, and the event id is claimed in the same transaction
as the payments it causes, so a redelivered event changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.billing import PaymentType
from datasaas.errors import Conflict, InvalidInput, NotFound
from datasaas.money import to_major
from datasaas.providers import lemonsqueezy, polar, stripe
from datasaas.providers.events import (
    CumulativeRefund,
    NewPayment,
    PayloadError,
    Provider,
    ProviderEvent,
    SignatureError,
)
from datasaas.resolvers import validation
from datasaas.resolvers.payments import PaymentIn, PaymentResult, record_payment
from datasaas.resolvers.sites import require_site
from datasaas.storage import payments as payment_store
from datasaas.storage import providers as store
from datasaas.storage import visitors as visitor_store
from datasaas.storage.models import ProviderConfig, Site

PROVIDERS: dict[str, Provider] = {
    stripe.NAME: stripe,
    lemonsqueezy.NAME: lemonsqueezy,
    polar.NAME: polar,
}
MAX_SECRET_LENGTH = 512


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What a webhook delivery did: ``recorded``, ``ignored`` or ``replayed``, and which
    transactions it created."""

    outcome: str
    transaction_ids: list[str]


def provider_name(value: str) -> str:
    """Return a supported provider's name or raise InvalidInput."""
    name = value.strip().lower()
    if name not in PROVIDERS:
        raise InvalidInput.for_field("provider", f"must be one of {', '.join(sorted(PROVIDERS))}")
    return name


async def set_provider(
    session: AsyncSession, *, site_id: str, provider: str, secret: str
) -> ProviderConfig:
    """Connect (or reconnect) a provider to a site with its webhook signing secret."""
    name = provider_name(provider)
    await require_site(session, site_id)
    secret = secret.strip()
    if not 1 <= len(secret) <= MAX_SECRET_LENGTH:
        raise InvalidInput.for_field("secret", f"must be 1-{MAX_SECRET_LENGTH} characters")
    await store.upsert_config(
        session, site_id=site_id, provider=name, secret=secret, now=datetime.now(UTC)
    )
    config = await store.get_config(session, site_id=site_id, provider=name)
    assert config is not None
    return config


async def list_providers(session: AsyncSession, *, site_id: str) -> Sequence[ProviderConfig]:
    """Return the providers connected to a site."""
    await require_site(session, site_id)
    return await store.list_configs(session, site_id=site_id)


async def remove_provider(session: AsyncSession, *, site_id: str, provider: str) -> None:
    """Disconnect a provider from a site (NotFound when it was not connected)."""
    name = provider_name(provider)
    await require_site(session, site_id)
    if not await store.delete_config(session, site_id=site_id, provider=name):
        raise NotFound(f"Provider '{name}' is not configured for site '{site_id}'.")


async def _visitor(
    session: AsyncSession, site: Site, provider: str, event: ProviderEvent, now: datetime
) -> str | None:
    """The visitor an event is about: its metadata, else its customer's link, else
    ``PROVIDER:CUSTOMER_ID``; a customer seen with metadata is linked to that visitor.

    Both ids are validated before anything is written (InvalidInput: 400, nothing stored).
    """
    if event.visitor_id is not None:
        validation.visitor_id(event.visitor_id, field="metadata.datasaas_visitor_id")
    if event.customer_id is not None:
        validation.visitor_id(
            f"{provider}:{event.customer_id}", field="customer"
        )  # the fallback visitor id must itself be valid
        if event.visitor_id is not None:
            await store.link_customer(
                session,
                site_id=site.id,
                provider=provider,
                customer_id=event.customer_id,
                visitor_uid=event.visitor_id,
                now=now,
            )
        linked = await store.customer_visitor(
            session, site_id=site.id, provider=provider, customer_id=event.customer_id
        )
        return event.visitor_id or linked or f"{provider}:{event.customer_id}"
    return event.visitor_id


def _payment_in(visitor: str, payment: NewPayment) -> PaymentIn:
    currency = payment.currency.upper()
    return PaymentIn(
        visitor_id=visitor,
        amount=to_major(payment.amount_minor, currency),
        currency=currency,
        transaction_id=payment.transaction_id,
        payment_type=payment.payment_type,
        product_name=payment.product_name,
        paid_at=payment.paid_at.isoformat(),
        billing_interval=payment.billing_interval,
        billing_interval_count=payment.billing_interval_count,
    )


async def _record_refund(
    session: AsyncSession,
    site: Site,
    provider: str,
    refund: CumulativeRefund,
    now: datetime,
) -> PaymentResult | None:
    """One refund for the part of the provider's running total not recorded yet.

    The refunded payment's row is locked first, so concurrent refund events of one charge are
    counted one after the other. A refund whose payment is not recorded yet (events delivered
    out of order) is a Conflict: the provider delivers it again later, when it can name it.
    """
    original = None
    for candidate in refund.originals:
        original = await payment_store.get_payment(
            session, site_id=site.id, transaction_id=candidate, for_update=True
        )
        if original is not None:
            break
    if original is None:
        raise Conflict(
            f"The payment refunded by '{refund.key}' is not recorded yet; "
            "deliver the refund again after the payment."
        )
    prefix = f"{refund.key}:refund:"
    recorded = await store.refunds_recorded(session, site_id=site.id, transaction_prefix=prefix)
    new = refund.total_refunded_minor - recorded
    if new <= 0:
        return None
    visitor = await visitor_store.get_visitor_by_key(session, original.visitor_id)
    currency = refund.currency.upper()
    payment = PaymentIn(
        visitor_id=visitor,
        amount=to_major(new, currency),
        currency=currency,
        transaction_id=f"{prefix}{refund.total_refunded_minor}",
        payment_type=PaymentType.REFUND,
        paid_at=min(refund.refunded_at, now).isoformat(),
        original_transaction_id=original.transaction_id,
    )
    return await record_payment(session, site=site, payment=payment, provider=provider, now=now)


@dataclass(frozen=True, slots=True)
class VerifiedEvent:
    """An event whose signature checked out with the site's secret, read into our terms."""

    site: Site
    provider: str
    event: ProviderEvent


async def verify_webhook(
    session: AsyncSession, *, site_id: str, provider: str, body: bytes, headers: Mapping[str, str]
) -> VerifiedEvent:
    """Verify a provider's webhook against the site's secret (a read: no write lock is taken
    for a forged request) and read what it says.

    NotFound: unknown provider or site, or the provider is not configured for the site.
    InvalidInput: the signature or its timestamp does not check out, or the verified event
    lacks a field its type needs.
    """
    module = PROVIDERS.get(provider)
    if module is None:
        raise NotFound(f"Unknown payment provider '{provider}'.")
    site = await require_site(session, site_id)
    config = await store.get_config(session, site_id=site.id, provider=provider)
    if config is None:
        raise NotFound(f"Provider '{provider}' is not configured for site '{site.id}'.")
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        payload = module.verify(body, lowered, config.secret)
        event: ProviderEvent = module.read(payload, lowered, body)
    except SignatureError as exc:
        raise InvalidInput(str(exc)) from None
    except PayloadError as exc:
        raise InvalidInput(f"The {provider} event cannot be used: {exc}.") from None
    return VerifiedEvent(site, provider, event)


async def apply_webhook(
    session: AsyncSession, *, verified: VerifiedEvent, now: datetime | None = None
) -> WebhookOutcome:
    """Record what a verified event says, in the caller's write transaction, once per event id.

    Errors of the payment resolver (an unsupported currency, a refund over its payment) roll
    everything back, the event id included, so the provider's retry can succeed later.
    """
    now = now or datetime.now(UTC)
    site, provider, event = verified.site, verified.provider, verified.event
    mapped = bool(event.payments or event.refund)
    if not await store.claim_event(
        session,
        site_id=site.id,
        provider=provider,
        event_id=event.event_id[:255],
        event_type=event.event_type[:128],
        outcome="mapped" if mapped else "ignored",
        now=now,
    ):
        return WebhookOutcome("replayed", [])
    visitor = await _visitor(session, site, provider, event, now)
    created: list[str] = []
    for payment in event.payments:
        if visitor is None:
            raise InvalidInput("The event names neither a visitor nor a customer.")
        result = await record_payment(
            session, site=site, payment=_payment_in(visitor, payment), provider=provider, now=now
        )
        if result.created:
            created.append(result.payment.transaction_id)
    if event.refund is not None:
        refunded = await _record_refund(session, site, provider, event.refund, now)
        if refunded is not None and refunded.created:
            created.append(refunded.payment.transaction_id)
    return WebhookOutcome("recorded" if created else "ignored", created)

"""Sites, API keys and authentication of a bearer secret."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from datasaas.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from datasaas.money import normalize_currency
from datasaas.storage import sites as store
from datasaas.storage.lookups import KeyRow, SharedLookups, find_keys
from datasaas.storage.models import ApiKey, Site

SITE_ID_RE = re.compile(r"^ds_[a-z0-9_]{1,61}$")
KEY_PREFIX = "ds_live_"
KEY_RE = re.compile(r"^ds_live_[0-9A-Za-z]{32}$")
_BASE62 = string.digits + string.ascii_letters
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9-]{1,63}$")
WRITE_REQUIRED = "This action requires an API key with Read & Write permissions."


class Scope(StrEnum):
    """What a key may do."""

    READ = "read"
    READ_WRITE = "read_write"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key: which key, for which site, with which scope."""

    key_id: str
    site_id: str
    scope: Scope

    def require_access(self, site_id: str) -> None:
        """Raise Forbidden unless this key belongs to ``site_id``."""
        if site_id != self.site_id:
            raise Forbidden(f"This API key does not have access to site '{site_id}'.")

    def require_write(self) -> None:
        """Raise Forbidden unless this key has Read & Write scope."""
        if self.scope is not Scope.READ_WRITE:
            raise Forbidden(WRITE_REQUIRED)

    def authorize(self, site_id: str, *, write: bool = False) -> None:
        """Raise Forbidden unless this key may read (or, with ``write``, write) ``site_id``."""
        self.require_access(site_id)
        if write:
            self.require_write()


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A newly created key; ``secret`` is shown once and never stored."""

    key: ApiKey
    secret: str


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(length))


def hash_secret(secret: str) -> str:
    """Return the SHA-256 hex digest stored for a key secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_site_id(site_id: str, *, field: str = "site_id") -> str:
    """Return a valid site id or raise InvalidInput."""
    if not SITE_ID_RE.fullmatch(site_id):
        raise InvalidInput.for_field(
            field, "must be 'ds_' followed by 1-61 lowercase letters, digits or underscores"
        )
    return site_id


def normalize_domain(domain: str) -> str:
    """Return a bare lowercase host name (scheme, path, port and leading 'www.' removed)."""
    host = domain.strip().lower()
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", host).split("/", 1)[0].split(":", 1)[0]
    host = host.rstrip(".").removeprefix("www.")
    if not _DOMAIN_RE.fullmatch(host):
        raise InvalidInput.for_field("domain", f"'{domain}' is not a valid domain name")
    return host


async def create_site(
    session: AsyncSession,
    *,
    name: str,
    domain: str,
    site_id: str | None = None,
    currency: str = "USD",
    now: datetime | None = None,
) -> Site:
    """Create a site; a missing id is generated. Raises Conflict when the id is taken."""
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise InvalidInput.for_field("name", "must be 1-200 characters")
    site_id = normalize_site_id(site_id) if site_id else "ds_" + _random_base62(10).lower()
    if await store.get_site(session, site_id) is not None:
        raise Conflict(f"Site '{site_id}' already exists.")
    site = Site(
        id=site_id,
        name=name,
        domain=normalize_domain(domain),
        currency=normalize_currency(currency),
        created_at=now or datetime.now(UTC),
    )
    await store.add(session, site)
    return site


async def list_sites(session: AsyncSession) -> Sequence[Site]:
    """Return every site, oldest first."""
    return await store.list_sites(session)


async def find_site(session: AsyncSession, site_id: str) -> Site | None:
    """Return the site with this id, or None."""
    return await store.get_site(session, site_id)


async def has_sites(session: AsyncSession) -> bool:
    """Tell whether at least one site exists."""
    return await store.has_sites(session)


async def require_site(session: AsyncSession, site_id: str) -> Site:
    """Return the site or raise NotFound."""
    site = await store.get_site(session, site_id)
    if site is None:
        raise NotFound(f"Site '{site_id}' does not exist.")
    return site


async def create_key(
    session: AsyncSession, *, site_id: str, scope: Scope, name: str | None = None
) -> IssuedKey:
    """Create a key for a site and return it with its secret (the only time it is visible)."""
    await require_site(session, site_id)
    secret = KEY_PREFIX + _random_base62(32)
    key = ApiKey(
        id="key_" + _random_base62(16),
        site_id=site_id,
        scope=scope.value,
        name=name,
        prefix=secret[: len(KEY_PREFIX) + 4],
        key_hash=hash_secret(secret),
        created_at=datetime.now(UTC),
    )
    await store.add(session, key)
    return IssuedKey(key=key, secret=secret)


async def list_keys(session: AsyncSession, *, site_id: str) -> Sequence[ApiKey]:
    """Return a site's keys (never their secrets)."""
    await require_site(session, site_id)
    return await store.list_keys(session, site_id)


async def revoke_key(session: AsyncSession, *, key_id: str) -> ApiKey:
    """Revoke a key at once; raises NotFound for an unknown id."""
    key = await store.revoke_key(session, key_id, datetime.now(UTC))
    if key is None:
        raise NotFound(f"API key '{key_id}' does not exist.")
    return key


def bearer_secret(authorization: str | None) -> str:
    """Extract the secret from an ``Authorization: Bearer`` header or raise Unauthorized."""
    if not authorization:
        raise Unauthorized("Missing API key: send 'Authorization: Bearer YOUR_API_KEY'.")
    scheme, _, secret = authorization.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not KEY_RE.fullmatch(secret):
        raise Unauthorized("Malformed API key: expected 'Authorization: Bearer ds_live_...'.")
    return secret


async def authenticate(session: AsyncSession, authorization: str | None) -> Principal:
    """Turn an Authorization header into a Principal, or raise Unauthorized."""
    digest = hash_secret(bearer_secret(authorization))
    return principal_of((await find_keys(session, [digest])).get(digest), digest)


async def authenticate_shared(
    lookups: SharedLookups[str, KeyRow], authorization: str | None
) -> Principal:
    """``authenticate`` with the lookup shared by the requests arriving together."""
    digest = hash_secret(bearer_secret(authorization))
    return principal_of(await lookups.find(digest), digest)


def principal_of(key: KeyRow | None, digest: str) -> Principal:
    """The Principal of the key found for ``digest``, or raise Unauthorized."""
    # The lookup is by hash, so timing reveals nothing of the secret; compare again in constant
    # time anyway so a future change to the lookup cannot introduce a leak.
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        raise Unauthorized("Invalid API key.")
    if key.revoked_at is not None:
        raise Unauthorized("This API key has been revoked.")
    return Principal(key_id=key.id, site_id=key.site_id, scope=Scope(key.scope))

"""Domain errors raised by resolvers; each front door translates them once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: dotted ``field`` path and a human message."""

    field: str
    message: str


class DomainError(Exception):
    """Base class: a stable machine ``code``, an HTTP ``status`` and a human message."""

    code = "internal_error"
    status = 500
    graphql_code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, *, details: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[FieldError] = details or []


class InvalidInput(DomainError):
    """The request is malformed or a value is out of range (400)."""

    code = "invalid_request"
    status = 400
    graphql_code = "BAD_USER_INPUT"

    @classmethod
    def for_field(cls, field_name: str, message: str) -> InvalidInput:
        """Build an error about a single field; the message names the field."""
        return cls(f"{field_name}: {message}", details=[FieldError(field_name, message)])


class Unauthorized(DomainError):
    """No valid API key (401)."""

    code = "unauthorized"
    status = 401
    graphql_code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    """The key is valid but may not do this (403)."""

    code = "forbidden"
    status = 403
    graphql_code = "FORBIDDEN"


class NotFound(DomainError):
    """The addressed thing does not exist (404)."""

    code = "not_found"
    status = 404
    graphql_code = "NOT_FOUND"


class Conflict(DomainError):
    """The request contradicts stored state (409)."""

    code = "conflict"
    status = 409
    graphql_code = "CONFLICT"


class PayloadTooLarge(DomainError):
    """The body is over the size limit (413)."""

    code = "payload_too_large"
    status = 413
    graphql_code = "BAD_USER_INPUT"


class UnsupportedMediaType(DomainError):
    """The body is not JSON (415)."""

    code = "unsupported_media_type"
    status = 415
    graphql_code = "BAD_USER_INPUT"


class RateLimited(DomainError):
    """Too many requests in the current window (429); ``retry_after`` is in seconds."""

    code = "rate_limited"
    status = 429
    graphql_code = "RATE_LIMITED"

    def __init__(
        self, retry_after: int, message: str = "Rate limit exceeded; retry later."
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    """A dependency (the database) cannot serve now; retry after ``retry_after`` seconds (503)."""

    code = "service_unavailable"
    status = 503
    graphql_code = "SERVICE_UNAVAILABLE"

    def __init__(
        self,
        message: str = "The service is temporarily unavailable; retry later.",
        *,
        retry_after: int = 5,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after

"""The REST error envelope, installed once for the whole app.

Every error leaves as ``{"error": {"code": ..., "message": ...}}`` (plus ``details`` for
validation errors); FastAPI's 422 becomes 400 and unexpected exceptions become a logged 500
without a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Match

from datasaas.errors import DomainError, FieldError, RateLimited, ServiceUnavailable
from datasaas.storage.faults import describe_error, is_unavailable

logger = logging.getLogger("datasaas")

_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ErrorDetail(BaseModel):
    """One invalid field."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """The error object."""

    code: str = Field(examples=["invalid_request"])
    message: str
    details: list[ErrorDetail] | None = None


class ErrorEnvelope(BaseModel):
    """Every error response."""

    error: ErrorBody


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def error_body(code: str, message: str, details: list[FieldError] | None = None) -> dict[str, Any]:
    """Return the error envelope."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = [{"field": d.field, "message": d.message} for d in details]
    return {"error": error}


def error_response(exc: DomainError, headers: dict[str, str] | None = None) -> JSONResponse:
    """Render a domain error as its status and envelope."""
    headers = dict(headers or {})
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited | ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=exc.status, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_details(errors: list[Any]) -> list[FieldError]:
    """Turn pydantic/FastAPI validation errors into field details."""
    return [FieldError(_location(tuple(e.get("loc", ()))), str(e.get("msg", ""))) for e in errors]


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(list(exc.errors()))
    summary = "; ".join(f"{d.field}: {d.message}" for d in details) or "Invalid request."
    return JSONResponse(error_body("invalid_request", summary, details), status_code=400)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at this request's path, sorted.

    Asked of the router itself (routes may sit in included routers), one method at a time.
    """
    routes = request.app.router.routes
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def _method_not_allowed(request: Request) -> JSONResponse:
    allow = allowed_methods(request)
    message = f"{request.method} is not allowed here; use {', '.join(allow)}."
    headers = {"Allow": ", ".join(allow)}
    if request.url.path.startswith("/graphql"):
        body = {"errors": [{"message": message, "extensions": {"code": "METHOD_NOT_ALLOWED"}}]}
        return JSONResponse(body, status_code=405, headers=headers)
    return JSONResponse(error_body("method_not_allowed", message), status_code=405, headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return _method_not_allowed(request)
    code = _CODES.get(
        exc.status_code, "invalid_request" if exc.status_code < 500 else "internal_error"
    )
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 404 and message == "Not Found":
        message = "No such route."
    return JSONResponse(
        error_body(code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def unexpected_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """Answer an exception no handler expected: 503 for an outage, else a logged 500.

    An outage (database unreachable, pool exhausted, disk full) is retryable, so clients and
    load balancers are told so; anything else is a bug and keeps its traceback in the log only.
    """
    if isinstance(exc, ClientDisconnect):
        # Nobody is there to read an answer; not a bug, so no traceback in the log.
        logger.info("client disconnected during %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("invalid_request", "The client disconnected before the body was sent."),
            status_code=400,
        )
    if is_unavailable(exc):
        logger.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            describe_error(exc),
        )
        return error_response(ServiceUnavailable())
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "Internal server error."), status_code=500)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the envelope handlers on the app."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)

"""Reading JSON request bodies: size limit, media type, exact numbers, known fields only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import Request

from datasaas.errors import FieldError, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from datasaas.money import load_json_exact

MAX_BODY_BYTES = 64 * 1024


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_raw(request: Request, *, limit: int = MAX_BODY_BYTES) -> bytes:
    """Return the body's bytes; 413 as soon as it is known to exceed ``limit``, chunked or not."""
    too_large = PayloadTooLarge(f"The body is over the {limit // 1024} KiB limit.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise too_large
    return bytes(raw)


async def read_json(request: Request, *, what: str = "the body") -> Any:
    """Return the parsed JSON body with exact decimals; 415, 413 or 400 on a bad body."""
    if not _is_json(request.headers.get("content-type", "")):
        raise UnsupportedMediaType(f"Send {what} as JSON with 'Content-Type: application/json'.")
    raw = await read_raw(request)
    try:
        return load_json_exact(raw)
    except ValueError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}") from None


async def read_json_object(request: Request, *, allowed: Iterable[str]) -> dict[str, Any]:
    """Return the body as a JSON object with exact decimals, refusing unknown fields."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("The body must be a JSON object.")
    allowed_set = set(allowed)
    unknown = sorted(key for key in body if key not in allowed_set)
    if unknown:
        raise InvalidInput(
            f"Unknown field(s): {', '.join(unknown)}.",
            details=[FieldError(key, "unknown field") for key in unknown],
        )
    return body

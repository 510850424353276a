"""Custom scalars: exact ``Decimal`` money, ``DateTime`` in UTC and a ``JSON`` value.

- ``Decimal`` leaves as a plain decimal string with the currency's decimals (``"24500.00"``),
  never through ``float``. It is read from a string or a number: literals in the query keep their
  exact digits, and the HTTP layer parses JSON variables with exact decimals, so ``10.10`` is
  exactly ten dollars ten. A Python ``float`` (only possible when calling the schema directly) is
  read by its shortest round-trip text, which is exact for every amount the API accepts.
- ``DateTime`` is ISO 8601 in UTC to the second with a ``Z`` suffix (``2026-03-26T23:59:59Z``),
  the same text the REST layer writes. Input accepts any ISO 8601 instant; no offset means UTC.
- ``JSON`` is any JSON value; fractional numbers written in the query become exact decimals,
  like the REST layer's body parser.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import strawberry
from graphql import (
    BooleanValueNode,
    EnumValueNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)
from strawberry.scalars import JSON
from strawberry.types.scalar import ScalarDefinition

from datasaas.money import decimal_from_text

__all__ = ["JSON", "SCALAR_MAP", "parse_decimal", "parse_json_literal", "serialize_datetime"]


def serialize_decimal(value: object) -> str:
    """Return a Decimal (or int) as a plain decimal string, keeping its trailing zeros."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"Decimal cannot represent {type(value).__name__} value {value!r}")
    return format(Decimal(value), "f")


def parse_decimal(value: object) -> Decimal:
    """Read a Decimal from a string, an int, an exact Decimal or a float; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("Decimal cannot represent a boolean")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("Decimal must be a finite number")
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("Decimal must be a finite number")
        return Decimal(repr(value))
    parsed = decimal_from_text(value) if isinstance(value, str) else None
    if parsed is not None:
        return parsed
    raise ValueError(f"Decimal cannot represent {value!r}: expected a decimal number")


def _parse_decimal_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> Decimal:
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return parse_decimal(node.value)
    raise ValueError("Decimal literals are numbers or strings")


def serialize_datetime(value: object) -> str:
    """Return an aware datetime as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise TypeError(f"DateTime needs a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_datetime(value: object) -> datetime:
    """Read an ISO 8601 instant (no offset = UTC) into an aware UTC datetime."""
    if not isinstance(value, str):
        raise ValueError("DateTime must be an ISO 8601 string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"DateTime cannot represent {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_datetime_literal(node: ValueNode, _variables: dict[str, Any] | None = None) -> datetime:
    if isinstance(node, StringValueNode):
        return parse_datetime(node.value)
    raise ValueError("DateTime literals are strings")


def parse_json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    """Turn a query literal into a JSON value, fractional numbers as exact decimals."""
    if isinstance(node, NullValueNode):
        return None
    if isinstance(node, StringValueNode | BooleanValueNode):
        return node.value
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return Decimal(node.value)
    if isinstance(node, ListValueNode):
        return [parse_json_literal(item, variables) for item in node.values]
    if isinstance(node, ObjectValueNode):
        return {
            field.name.value: parse_json_literal(field.value, variables) for field in node.fields
        }
    if isinstance(node, VariableNode):
        return (variables or {}).get(node.name.value)
    if isinstance(node, EnumValueNode):
        raise ValueError("JSON literals cannot be enum values")
    raise ValueError(f"JSON cannot represent {node.kind}")


def _identity(value: object) -> object:
    return value


DECIMAL = strawberry.scalar(
    name="Decimal",
    description=(
        "An exact decimal number. Output: a string with the currency's decimals, e.g. "
        '"24500.00". Input: a string or a number.'
    ),
    serialize=serialize_decimal,
    parse_value=parse_decimal,
    parse_literal=_parse_decimal_literal,
)

DATETIME = strawberry.scalar(
    name="DateTime",
    description="An instant as ISO 8601 in UTC to the second, e.g. 2026-03-26T23:59:59Z.",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
    parse_literal=_parse_datetime_literal,
)

JSON_SCALAR = strawberry.scalar(
    name="JSON",
    description="Any JSON value (ECMA-404).",
    specified_by_url="https://ecma-international.org/publications-and-standards/standards/ecma-404/",
    serialize=_identity,
    parse_value=_identity,
    parse_literal=parse_json_literal,
)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    Decimal: DECIMAL,
    datetime: DATETIME,
    JSON: JSON_SCALAR,
}

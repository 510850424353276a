"""Visitor filters (CONTRACT §11): one parser for REST's bracket syntax and GraphQL's FilterInput.

A filter narrows a read to the visitors whose first-touch attribute matches. ``values`` holds
``None`` for "no value" (REST's empty value, GraphQL's ``null``). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from datasaas.errors import FieldError, InvalidInput

MAX_FILTERS = 20
MAX_VALUES = 100
MAX_VALUE_LENGTH = 255
_BRACKET = re.compile(r"^(?P<dimension>[^\[\]]*)\[(?P<operator>[^\[\]]*)\]$")


class Dimension(StrEnum):
    """A visitor's first-touch attributes that reads can filter and break down by."""

    SOURCE = "source"
    COUNTRY = "country"
    CITY = "city"
    BROWSER = "browser"
    OS = "os"
    DEVICE_TYPE = "device_type"
    UTM_SOURCE = "utm_source"
    UTM_MEDIUM = "utm_medium"
    UTM_CAMPAIGN = "utm_campaign"


class FilterOperator(StrEnum):
    """``is`` (exact, any of), ``is_not`` (none of, keeps null), ``contains`` (never null)."""

    IS = "is"
    IS_NOT = "is_not"
    CONTAINS = "contains"


@dataclass(frozen=True, slots=True)
class Filter:
    """One parsed filter: dimension, operator and values (``None`` = no value)."""

    dimension: Dimension
    operator: FilterOperator
    values: tuple[str | None, ...]


def _names(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def parse_dimension(value: object, *, field: str = "dimension") -> Dimension:
    """Return the dimension named by ``value``, or raise InvalidInput naming ``field``."""
    if isinstance(value, Dimension):
        return value
    if isinstance(value, str):
        try:
            return Dimension(value)
        except ValueError:
            pass
    if value is None or value == "":
        raise InvalidInput.for_field(field, f"is required: one of {_names(Dimension)}")
    raise InvalidInput.for_field(field, f"unknown dimension; one of {_names(Dimension)}")


def build_filter(
    dimension: object, operator: object, values: Sequence[str | None], *, field: str
) -> Filter:
    """Validate one filter from either door; errors name ``field``."""
    parsed_dimension = parse_dimension(dimension, field=field)
    try:
        parsed_operator = (
            operator if isinstance(operator, FilterOperator) else FilterOperator(str(operator))
        )
    except ValueError:
        raise InvalidInput.for_field(
            field, f"unknown operator; one of {_names(FilterOperator)}"
        ) from None
    cleaned = tuple(None if value in (None, "") else value for value in values)
    if not cleaned:
        raise InvalidInput.for_field(field, "needs at least one value")
    if len(cleaned) > MAX_VALUES:
        raise InvalidInput.for_field(field, f"takes at most {MAX_VALUES} values")
    if any(value is not None and len(value) > MAX_VALUE_LENGTH for value in cleaned):
        raise InvalidInput.for_field(field, f"values are at most {MAX_VALUE_LENGTH} characters")
    if parsed_operator is FilterOperator.CONTAINS and (len(cleaned) != 1 or cleaned[0] is None):
        raise InvalidInput.for_field(field, "contains takes exactly one non-empty value")
    return Filter(parsed_dimension, parsed_operator, cleaned)


def from_query(params: Iterable[tuple[str, str]]) -> list[Filter]:
    """The filters among query parameters: every ``DIMENSION[OPERATOR]=VALUE`` one.

    ``is``/``is_not`` values are split on ``|``; an empty value (or part) means no value.
    ``contains`` takes its value whole. Errors name the parameter as sent.
    """
    filters: list[Filter] = []
    errors: list[FieldError] = []
    for name, raw in params:
        match = _BRACKET.match(name)
        if match is None:
            continue
        operator = match["operator"]
        values = [raw] if operator == FilterOperator.CONTAINS else raw.split("|")
        try:
            filters.append(build_filter(match["dimension"], operator, values, field=name))
        except InvalidInput as exc:
            errors.extend(exc.details)
    if errors:
        raise InvalidInput("; ".join(f"{e.field}: {e.message}" for e in errors), details=errors)
    return check_count(filters)


def check_count(filters: list[Filter], *, field: str = "filters") -> list[Filter]:
    """Refuse more than ``MAX_FILTERS`` filters; return them."""
    if len(filters) > MAX_FILTERS:
        raise InvalidInput.for_field(field, f"at most {MAX_FILTERS} filters")
    return filters


def matches(flt: Filter, value: str | None) -> bool:
    """Whether an attribute value passes a filter (the rule the SQL implements)."""
    if flt.operator is FilterOperator.CONTAINS:
        needle = flt.values[0]
        return value is not None and needle is not None and needle.casefold() in value.casefold()
    found = value in flt.values
    return found if flt.operator is FilterOperator.IS else not found

"""Every shape is declared once and agrees field by field wherever another door shows it.

The resolver inputs (``GoalIn``, ``PaymentIn``) are the declaration; the REST body models
(which document ``/openapi.json``) and the GraphQL inputs must carry exactly their fields, in
the same order, and both doors build the resolver input from that one field list. The stored
rows (``CompletionRow``, ``LedgerRow``) are the declaration of the outputs; the REST items and
GraphQL types show the same fields under their public names. A field added in one place and
forgotten in another fails here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import BaseModel

from datasaas.resolvers.goals import GOAL_FIELDS, GoalIn
from datasaas.resolvers.ingest import TrackedEvent
from datasaas.resolvers.payments import PAYMENT_FIELDS, PaymentIn
from datasaas.rest_compat import models
from datasaas.schema import types
from datasaas.storage.goals import CompletionRow
from datasaas.storage.payments import LedgerRow
from datasaas.tracking.routes import EventPayload

# Stored-row names that the public shapes spell differently.
PUBLIC_NAMES = {"visitor_uid": "visitor_id", "amount_minor": "amount"}


def _dataclass_fields(shape: Any) -> list[str]:
    return [field.name for field in dataclasses.fields(shape)]


def _graphql_fields(shape: Any) -> list[str]:
    return [field.python_name for field in shape.__strawberry_definition__.fields]


def _rest_fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _public(row: Any, *, without: set[str]) -> list[str]:
    return [PUBLIC_NAMES.get(name, name) for name in _dataclass_fields(row) if name not in without]


@pytest.mark.parametrize(
    ("resolver_input", "field_list", "rest_body", "graphql_input"),
    [
        pytest.param(GoalIn, GOAL_FIELDS, models.GoalCreateBody, types.CreateGoalInput, id="goal"),
        pytest.param(
            PaymentIn,
            PAYMENT_FIELDS,
            models.PaymentCreateBody,
            types.CreatePaymentInput,
            id="payment",
        ),
    ],
)
def test_write_inputs_agree_field_by_field(
    resolver_input: Any, field_list: tuple[str, ...], rest_body: Any, graphql_input: Any
) -> None:
    declared = _dataclass_fields(resolver_input)
    assert list(field_list) == declared
    assert _rest_fields(rest_body) == declared
    assert _graphql_fields(graphql_input) == declared


def test_completion_shows_the_stored_row_in_both_doors() -> None:
    internal = {"id", "goal_id"}
    assert _graphql_fields(types.Completion) == _public(CompletionRow, without=internal)
    # REST's item predates url and metadata (the seed's shape); everything else is the row's.
    assert _rest_fields(models.CompletionItem) == _public(
        CompletionRow, without=internal | {"url", "metadata"}
    )


def test_ledger_item_shows_the_stored_row() -> None:
    rest = _rest_fields(models.PaymentItem)
    row = [
        name.removesuffix("_minor").replace("refunded", "refunded_amount")
        for name in _public(LedgerRow, without={"id"})
    ]
    assert rest == row
    graphql = set(_graphql_fields(types.Payment))
    assert graphql <= set(rest), graphql - set(rest)


def test_tracker_payload_documents_every_tracked_field() -> None:
    documented = _rest_fields(EventPayload)
    tracked = _dataclass_fields(TrackedEvent)
    assert set(tracked) <= set(documented), set(tracked) - set(documented)
    # What is documented but not kept: read for first touch, not stored per event.
    assert set(documented) - set(tracked) == {"screen_width", "language"}
